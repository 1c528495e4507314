//! A reshard in progress survives keyway's restart: when one starts, the
//! placement keys move from is written beside the configuration file
//! (`<config>.reshard`, a configuration keyway reads back: the clusters as
//! they were placed, nothing secret), and it is removed when the reshard
//! ends. A keyway that starts and finds it resumes the reshard: keys still
//! on their old owners move as they are touched, and the mover scans the
//! old owners again. Where the reshard is goes in a second file
//! (`<config>.reshard.state`: its round, and whether it is held): a fleet's
//! instance restarted in a hold holds again and waits for the fleet's
//! migrate or release, as it would have; one restarted in the falling
//! round resumes that round.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::{Cluster, Config, ConfigError, LbPolicy, Reshard};
use crate::topology::migration::{self, MigrationError, Round};
use crate::topology::{Phase, Topology};

/// Where the reshard of the configuration at `config` is kept.
pub fn path_of(config: &Path) -> PathBuf {
    let mut name = config.as_os_str().to_owned();
    name.push(".reshard");
    PathBuf::from(name)
}

/// Where the reshard's round and phase are kept.
fn state_path(config: &Path) -> PathBuf {
    let mut name = path_of(config).into_os_string();
    name.push(".state");
    PathBuf::from(name)
}

/// Keeps `topo`'s reshards: for every cluster it migrates, the placement
/// keys move from, and where the reshard is, each written atomically (a
/// file renamed into place); no files when it migrates none.
pub fn keep(config: &Path, topo: &Topology) -> io::Result<()> {
    let Some(m) = topo.clusters.iter().find_map(|c| c.migration.as_ref()) else {
        remove(config);
        return Ok(());
    };
    // The state first: a restart before the placement is kept finds a
    // state and no reshard, and drops the state.
    let phase = match m.phase {
        Phase::Hold => "hold",
        Phase::Migrate => "migrate",
    };
    let state = format!("phase = \"{phase}\"\nround = \"{}\"\n", m.round.name());
    replace(&state_path(config), &state)?;
    write(config, topo, &m.previous.placed.name)
}

/// `text` in place of the file at `path`, atomically.
fn replace(path: &Path, text: &str) -> io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

/// The placements `topo`'s migrations move keys from, as a configuration
/// (routed to `first`, one of them: a configuration needs a route).
fn write(config: &Path, topo: &Topology, first: &str) -> io::Result<()> {
    let mut text = String::from(
        "# The placement a reshard moves keys from (keyway writes and removes\n# this file; remove it only once no key is left on these endpoints).\n[proxy]\nlisten = \"127.0.0.1:1\"\n",
    );
    for m in topo.clusters.iter().filter_map(|c| c.migration.as_ref()) {
        text.push_str(&cluster_toml(&m.previous.placed));
    }
    text.push_str(&format!("\n[routes]\ncatch_all = {}\n", quoted(first)));
    replace(&path_of(config), &text)
}

/// Removes the files: the reshard ended.
pub fn remove(config: &Path) {
    remove_file(&path_of(config));
    remove_file(&state_path(config));
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
    /// it (the placement before the reshard, or its rising round).
    pub held: Option<Topology>,
}

/// `topo` (the configuration keyway starts with) resuming the reshard kept
/// beside `config`, if one is: Ok(None) when there is none. A reshard of
/// a `coordinated` cluster that was held holds again; any other moves
/// keys (no one else has a say).
pub fn resumed(config: &Path, topo: &Topology) -> Result<Option<Resumed>, ResumeError> {
    let path = path_of(config);
    if !path.exists() {
        remove_file(&state_path(config));
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
    // (No state: kept before rounds were, so rising and moving.)
    let state = std::fs::read_to_string(state_path(config)).unwrap_or_default();
    let state: toml::Table = state.parse().unwrap_or_default();
    let said = |key: &str, value: &str| state.get(key).and_then(|v| v.as_str()) == Some(value);
    let coordinated = (topo.config.clusters.iter()).any(|c| c.reshard == Reshard::Coordinated);
    let held = coordinated && said("phase", "hold");
    let phase = if held { Phase::Hold } else { Phase::Migrate };
    let round = if said("round", Round::Falling.name()) {
        Round::Falling
    } else {
        Round::Rising
    };
    let now =
        migration::with_previous(topo.clone(), &before, phase).map_err(ResumeError::Migration)?;
    let now = migration::in_round(now, round);
    // Released, a held falling round goes back to moving the rising one's
    // keys (they have moved); a held rising round to the placement before.
    let held = match (held, round) {
        (false, _) => None,
        (true, Round::Rising) => Some(before),
        (true, Round::Falling) => {
            let rising = migration::in_round(now.clone(), Round::Rising);
            Some(migration::in_phase(&rising, Phase::Migrate))
        }
    };
    Ok(Some(Resumed { topo: now, held }))
}

/// A digest of where `config` places keys in its clusters that reshard
/// (their placement, in name order): a fleet's instances must agree on it
/// before keys move, and so must a file the operator names.
pub fn placement_digest(config: &Config) -> String {
    let mut clusters: Vec<&Cluster> = (config.clusters.iter())
        .filter(|c| c.reshard.moves_keys())
        .collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    let text: String = clusters.into_iter().map(cluster_toml).collect();
    // FNV-1a, 64 bits: the same in every process (unlike a seeded hash).
    let digest = (text.bytes()).fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{digest:016x}")
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
                let from = match home.moving {
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

    /// A fleet's reshard kept in its falling round's hold resumes held in
    /// that round, released to its rising round (whose keys have moved).
    #[test]
    fn a_held_falling_round_resumes_held() {
        let dir = std::env::temp_dir().join(format!("keyway-falling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("keyway.toml");
        let three = "\"127.0.0.1:7001\", \"127.0.0.1:7002\", \"127.0.0.1:7003\"";
        let two = "\"127.0.0.1:7001\", \"127.0.0.1:7002\"";
        let coordinated = |eps| {
            let mut c = config("ring_hash", "", eps);
            c.clusters[0].reshard = Reshard::Coordinated;
            c
        };
        let running = Topology::build(coordinated(three));
        let next = Topology::build(coordinated(two));
        let rising = migration::with_previous(next, &running, Phase::Migrate).expect("starts");
        let falling = migration::falling(&rising).expect("rising");
        keep(&file, &falling).expect("keep");
        let resumed = resumed(&file, &Topology::build(coordinated(two)))
            .expect("read")
            .expect("resumes");
        let m = resumed.topo.clusters[0].migration.as_ref().expect("moving");
        assert_eq!((m.phase, m.round), (Phase::Hold, Round::Falling));
        let held = resumed.held.expect("held");
        let m = held.clusters[0]
            .migration
            .as_ref()
            .expect("released: rising");
        assert_eq!((m.phase, m.round), (Phase::Migrate, Round::Rising));
        remove(&file);
        assert!(!state_path(&file).exists());
    }

    fn resumed_none(file: &Path, topo: &Topology) -> bool {
        matches!(resumed(file, topo), Ok(None))
    }
}
