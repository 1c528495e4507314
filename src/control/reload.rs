//! Configuration reloads (SIGHUP, `POST /reload`) and health changes, on
//! the control side, one at a time: the file is read and checked here; a
//! valid one becomes the next `Generation` (a new immutable `Topology`
//! and the slot maps discovered for it), handed to every core (see
//! `core::reload`), then its discovery to the discovery thread. An invalid
//! one changes nothing and says why.

use crate::config::Config;
use crate::control::cores::{Cores, Generation};
use crate::control::discovery::{self, Directory, Discovery};
use crate::topology::{Health, Topology};
use crossbeam_channel::Sender;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What `/stats` and `/metrics` show of reloads.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    /// 1 for the configuration keyway started with, one more per reload.
    pub generation: u64,
    pub last_reload: Option<SystemTime>,
    pub succeeded: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

/// The running configuration and how to replace it. Shared by the control
/// thread, the admin endpoint and the health monitor; one change runs at a
/// time, and readers of the state never wait for one.
pub struct Reloader {
    path: Option<PathBuf>,
    cores: Cores,
    /// Where each generation's discovery goes once the cores serve it.
    discovery: Sender<Discovery>,
    directory: Arc<Mutex<Directory>>,
    state: Mutex<(Arc<Topology>, ReloadStatus)>,
    /// Held for the whole of a reload or health change.
    changing: Mutex<()>,
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        topo: Arc<Topology>,
        cores: Cores,
        discovery: Sender<Discovery>,
        directory: Arc<Mutex<Directory>>,
    ) -> Reloader {
        let status = ReloadStatus {
            generation: 1,
            last_reload: None,
            succeeded: 0,
            failed: 0,
            last_error: None,
        };
        Reloader {
            path,
            cores,
            discovery,
            directory,
            state: Mutex::new((topo, status)),
            changing: Mutex::new(()),
        }
    }

    /// The configuration being served.
    pub fn topology(&self) -> Arc<Topology> {
        self.lock().0.clone()
    }

    pub fn status(&self) -> ReloadStatus {
        self.lock().1.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Arc<Topology>, ReloadStatus)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the configuration file again and, if it is valid and can be
    /// applied while running, makes every core serve it. Ok: what now
    /// runs; Err: why nothing changed. Either way it is logged.
    pub fn reload(&self, asked_by: &str) -> Result<String, String> {
        let _one = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let (running, generation) = {
            let state = self.lock();
            (state.0.clone(), state.1.generation)
        };
        let outcome = self.apply(&running, generation + 1);
        let mut state = self.lock();
        let status = &mut state.1;
        match outcome {
            Ok(topo) => {
                status.generation += 1;
                status.succeeded += 1;
                status.last_reload = Some(SystemTime::now());
                status.last_error = None;
                let msg = format!(
                    "configuration reloaded ({asked_by}): generation {}, {} cluster(s), {} endpoint(s)",
                    status.generation,
                    topo.clusters.len(),
                    topo.endpoints.len()
                );
                crate::log::configure(topo.config.log_level);
                state.0 = topo;
                crate::info!("{msg}");
                Ok(msg)
            }
            Err(why) => {
                status.failed += 1;
                status.last_error = Some(why.clone());
                let msg = format!(
                    "configuration reload ({asked_by}) failed, still serving generation {}: {why}",
                    status.generation
                );
                crate::error!("{msg}");
                Err(msg)
            }
        }
    }

    fn apply(&self, running: &Topology, generation: u64) -> Result<Arc<Topology>, String> {
        let Some(path) = &self.path else {
            return Err("keyway was started without a configuration file".into());
        };
        let config = Config::load(path).map_err(|e| e.0)?;
        let health = running.health.clone();
        let fixed = needs_restart(&running.config, &config);
        if !fixed.is_empty() {
            return Err(format!(
                "{} cannot change while keyway runs (restart keyway to change {})",
                fixed.join(", "),
                if fixed.len() == 1 { "it" } else { "them" }
            ));
        }
        for w in config.warnings() {
            crate::warn!("{w}");
        }
        let topo = Arc::new(Topology::with_health(config, health));
        // The next generation's Redis Clusters are discovered before the
        // cores take it, so that their first requests find a slot map.
        let mut discovery = Discovery::claiming(topo.clone(), generation, self.directory.clone());
        discovery.initial();
        self.distribute(Generation {
            number: generation,
            topo: topo.clone(),
            discovered: Some(discovery.found()),
        });
        // The cores serve it already: a discovery thread that is gone costs
        // refreshes, not the reload.
        if self.discovery.send(discovery).is_err() {
            crate::error!("the discovery thread is gone: slot maps will not be refreshed");
        }
        Ok(topo)
    }

    /// The running configuration with `health`'s endpoints down (the
    /// health monitor's doing); its generation stays.
    pub fn set_health(&self, health: Health) -> Arc<Topology> {
        let _one = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let (running, generation) = {
            let state = self.lock();
            (state.0.clone(), state.1.generation)
        };
        if running.health == health {
            return running;
        }
        let topo = Arc::new(Topology::with_health(running.config.clone(), health));
        discovery::show_health(&self.directory, generation, &topo);
        self.distribute(Generation {
            number: generation,
            topo: topo.clone(),
            discovered: None,
        });
        self.lock().0 = topo.clone();
        topo
    }

    /// Hands `generation` to every core and waits (a while) until they
    /// serve it.
    fn distribute(&self, generation: Generation) {
        let cores = self.cores.len();
        let served = self.cores.reload(generation);
        if served < cores {
            crate::warn!(
                "{served} of {cores} cores confirmed the new configuration within {:?}; the others take it when they next look",
                super::cores::RELOAD_CONFIRM_WITHIN
            );
        }
    }
}

/// What a reload cannot apply to a running keyway: its listeners are bound
/// and its cores started once. Named as in the file.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut fixed = Vec::new();
    let mut check = |changed: bool, key: &str| {
        if changed {
            fixed.push(key.to_string());
        }
    };
    check(old.listen != new.listen, "proxy.listen");
    check(old.cores != new.cores, "proxy.cores");
    check(old.max_clients != new.max_clients, "proxy.max_clients");
    check(
        old.spin_before_park != new.spin_before_park,
        "proxy.spin_before_park",
    );
    // Certificates rotated under the same file names count as a change.
    let tls = |c: &Config| {
        c.tls
            .as_ref()
            .map(|t| (t.listen, t.settings.clone(), t.files))
    };
    check(
        tls(old) != tls(new),
        "proxy.tls (its settings or certificate files)",
    );
    check(old.admin_listen != new.admin_listen, "admin.listen");
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(proxy: &str) -> Config {
        let text = format!(
            "[proxy]\n{proxy}\n[[clusters]]\nname = \"a\"\nlb_policy = \"ring_hash\"\nendpoints = [\"127.0.0.1:7001\"]\n[routes]\ncatch_all = \"a\"\n"
        );
        Config::parse(&text, "t.toml").expect("valid")
    }

    #[test]
    fn listeners_and_cores_need_a_restart_the_rest_does_not() {
        let base = config("listen = \"127.0.0.1:6380\"\ncores = 1");
        assert!(needs_restart(&base, &base).is_empty());
        let moved = config("listen = \"127.0.0.1:6381\"\ncores = 2");
        assert_eq!(
            needs_restart(&base, &moved),
            ["proxy.listen", "proxy.cores"]
        );
        let tuned = config(
            "listen = \"127.0.0.1:6380\"\ncores = 1\nop_timeout = \"2s\"\nclient_idle_timeout = \"60s\"\nconnection_rate_limit = 10",
        );
        assert!(needs_restart(&base, &tuned).is_empty());
    }
}
