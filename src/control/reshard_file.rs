//! A reshard in progress survives keyway's restart: when one starts, the
//! placement keys move from is written beside the configuration file
//! (`<config>.reshard`, a configuration keyway reads back: the clusters as
//! they were placed, nothing secret), and it is removed when the reshard
//! ends. A keyway that starts and finds it resumes the reshard: keys still
//! on their old owners move as they are touched, and the mover scans the
//! old owners again. A reshard held for a fleet's word (the hold phase of
//! `keyway reshard start`) is marked by a second file
//! (`<config>.reshard.held`): an instance restarted then holds again, and
//! waits for the fleet's migrate or release, as it would have.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::{Cluster, Config, ConfigError, LbPolicy, Reshard};
use crate::topology::migration::{self, MigrationError};
use crate::topology::{Phase, Topology};

/// Where the reshard of the configuration at `config` is kept.
pub fn path_of(config: &Path) -> PathBuf {
    let mut name = config.as_os_str().to_owned();
    name.push(".reshard");
    PathBuf::from(name)
}

/// Where a reshard held for a fleet's word is marked.
fn held_path(config: &Path) -> PathBuf {
    let mut name = path_of(config).into_os_string();
    name.push(".held");
    PathBuf::from(name)
}

/// Keeps `topo`'s reshards: for every cluster it migrates, the placement
/// keys move from, written atomically (a file renamed into place), and
/// whether they are held; no file when it migrates none.
pub fn keep(config: &Path, topo: &Topology) -> io::Result<()> {
    let held = (topo.clusters.iter())
        .filter_map(|c| c.migration.as_ref())
        .any(|m| m.phase == Phase::Hold);
    // Marked held before the reshard is kept: a restart in between finds
    // a mark and no reshard, and drops the mark.
    if held {
        std::fs::write(held_path(config), "")?;
    }
    write(config, topo)?;
    if !held {
        remove_file(&held_path(config));
    }
    Ok(())
}

fn write(config: &Path, topo: &Topology) -> io::Result<()> {
    let mut text = String::from(
        "# The placement a reshard moves keys from (keyway writes and removes\n# this file; remove it only once no key is left on these endpoints).\n[proxy]\nlisten = \"127.0.0.1:1\"\n",
    );
    let mut first = None;
    for m in topo.clusters.iter().filter_map(|c| c.migration.as_ref()) {
        let before = &m.previous.placed;
        first.get_or_insert_with(|| before.name.clone());
        text.push_str(&cluster_toml(before));
    }
    let Some(first) = first else {
        remove(config);
        return Ok(());
    };
    text.push_str(&format!("\n[routes]\ncatch_all = {}\n", quoted(&first)));
    let path = path_of(config);
    let partial = path.with_extension("reshard.partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, &path)
}

/// Removes the files: the reshard ended.
pub fn remove(config: &Path) {
    remove_file(&path_of(config));
    remove_file(&held_path(config));
}

fn remove_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            crate::error!("cannot remove {}: {e}", path.display());
        }
    }
}

/// Why a reshard kept beside the configuration cannot be resumed.
#[derive(Debug)]
pub enum ResumeError {
    Unreadable(ConfigError),
    Migration(MigrationError),
}

impl std::fmt::Display for ResumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResumeError::Unreadable(e) => write!(f, "a reshard was in progress, but {e}"),
            ResumeError::Migration(MigrationError::AlreadyMoving { cluster }) => write!(
                f,
                "a reshard of cluster `{cluster}` was in progress and the configuration now places it differently again"
            ),
        }
    }
}

/// A reshard a restart interrupted, as keyway starts with it.
pub struct Resumed {
    /// The configuration keyway starts with, resuming the reshard.
    pub topo: Topology,
    /// It was held for a fleet's word: what serves if the fleet releases
    /// it (the configuration, placed as before the reshard).
    pub held: Option<Topology>,
}

/// `topo` (the configuration keyway starts with) resuming the reshard kept
/// beside `config`, if one is: Ok(None) when there is none. A reshard of
/// a `coordinated` cluster that was held holds again; any other moves
/// keys (no one else has a say).
pub fn resumed(config: &Path, topo: &Topology) -> Result<Option<Resumed>, ResumeError> {
    let path = path_of(config);
    if !path.exists() {
        remove_file(&held_path(config));
        return Ok(None);
    }
    let placed = Config::load(&path).map_err(ResumeError::Unreadable)?;
    // `topo`'s configuration with the clusters the file keeps placed as it
    // says (the file has their placement, nothing else).
    let mut before = topo.config.clone();
    for c in &mut before.clusters {
        if let Some(p) = placed.clusters.iter().find(|p| p.name == c.name) {
            *c = migration::placed_as(c, p);
        }
    }
    let before = Topology::with_health(before, topo.health.clone());
    let coordinated = (topo.config.clusters.iter()).any(|c| c.reshard == Reshard::Coordinated);
    let held = coordinated && held_path(config).exists();
    let phase = if held { Phase::Hold } else { Phase::Migrate };
    let now =
        migration::with_previous(topo.clone(), &before, phase).map_err(ResumeError::Migration)?;
    Ok(Some(Resumed {
        topo: now,
        held: held.then_some(before),
    }))
}

/// A cluster's placement as TOML: what its ring is built from.
fn cluster_toml(c: &Cluster) -> String {
    let endpoints: Vec<String> = (c.endpoints.iter())
        .map(|e| {
            let name = match c.lb_policy {
                LbPolicy::Ketama => format!(", name = {}", quoted(&e.ketama_name)),
                _ => String::new(),
            };
            format!(
                "{{ address = {}, weight = {}{name} }}",
                quoted(&e.address),
                e.weight
            )
        })
        .collect();
    let (policy, params) = match c.lb_policy {
        LbPolicy::RingHash => (
            "ring_hash",
            format!(
                "min_ring_size = {}\nmax_ring_size = {}\n",
                c.min_ring_size, c.max_ring_size
            ),
        ),
        LbPolicy::Maglev => ("maglev", format!("table_size = {}\n", c.table_size)),
        LbPolicy::Ketama => ("ketama", format!("hash = {}\n", quoted(c.hash.name()))),
        LbPolicy::RedisCluster => ("redis_cluster", String::new()),
    };
    format!(
        "\n[[clusters]]\nname = {}\nlb_policy = \"{policy}\"\n{params}endpoints = [{}]\n",
        quoted(&c.name),
        endpoints.join(", ")
    )
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::router::Router;

    fn config(policy: &str, extra: &str, endpoints: &str) -> Config {
        let text = format!(
            "[proxy]\nlisten = \"127.0.0.1:1\"\n[[clusters]]\nname = \"c\"\nlb_policy = \"{policy}\"\nreshard = \"migrate\"\n{extra}\nendpoints = [{endpoints}]\n[routes]\ncatch_all = \"c\"\n"
        );
        Config::parse(&text, "t.toml").expect("config")
    }

    /// The file gives back the placement it was written from, key for key,
    /// and a keyway starting with the new configuration resumes moving.
    #[test]
    fn the_placement_written_is_the_placement_read_back() {
        let dir = std::env::temp_dir().join(format!("keyway-reshard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("keyway.toml");
        for (policy, extra) in [
            ("ketama", "hash = \"md5\""),
            ("ring_hash", "min_ring_size = 2048"),
            ("maglev", "table_size = 5003"),
        ] {
            let five = "\"127.0.0.1:7001\", { address = \"127.0.0.1:7002\", weight = 3, name = \"two\" }, \"127.0.0.1:7003\"";
            let six = format!("{five}, \"127.0.0.1:7004\"");
            let running = Topology::build(config(policy, extra, five));
            let next = Topology::build(config(policy, extra, &six));
            let next = migration::with_previous(next, &running, Phase::Hold).expect("starts");
            keep(&file, &next).expect("write");
            let restarted = Topology::build(config(policy, extra, &six));
            let resumed = resumed(&file, &restarted).expect("read").expect("resumes");
            assert!(resumed.held.is_none(), "not a fleet's: it moves keys");
            let resumed = resumed.topo;
            let m = resumed.clusters[0].migration.as_ref().expect("moving");
            assert_eq!(m.phase, Phase::Migrate, "{policy}");
            for i in 0..3000 {
                let key = format!("k:{i}");
                let was = Router::new(&running, &[]).primary(key.as_bytes()).unwrap();
                let router = Router::new(&resumed, &[]);
                let home = router.locate(0, key.as_bytes()).unwrap();
                let from = match router.moving(0, key.as_bytes(), &home) {
                    Some(m) => m.from,
                    None => home.shard.primary,
                };
                assert_eq!(
                    resumed.endpoints[from].label, running.endpoints[was].label,
                    "{policy} {key}"
                );
            }
            remove(&file);
            assert!(resumed_none(&file, &restarted));
        }
    }

    fn resumed_none(file: &Path, topo: &Topology) -> bool {
        matches!(resumed(file, topo), Ok(None))
    }
}
