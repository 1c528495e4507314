//! Configuration reloads (SIGHUP, `POST /reload`), on the control side: the
//! file is read and checked here; a valid one becomes a new immutable
//! `Topology` that the discovery thread hands to every core (see
//! `core::reload`). An invalid one changes nothing and says why.

use crate::config::Config;
use crate::control::discovery::DiscoveryReload;
use crate::topology::{Health, Topology};
use crossbeam_channel::{bounded, Sender};
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
    cores: usize,
    discovery: Sender<DiscoveryReload>,
    state: Mutex<(Arc<Topology>, ReloadStatus)>,
    /// Held for the whole of a reload or health change.
    changing: Mutex<()>,
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        topo: Arc<Topology>,
        cores: usize,
        discovery: Sender<DiscoveryReload>,
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
        self.distribute(topo, generation, true)
    }

    /// The running configuration with `health`'s endpoints down (the
    /// health monitor's doing); its generation stays.
    pub fn set_health(&self, health: Health) -> Result<Arc<Topology>, String> {
        let _one = self.changing.lock().unwrap_or_else(|p| p.into_inner());
        let (running, generation) = {
            let state = self.lock();
            (state.0.clone(), state.1.generation)
        };
        if running.health == health {
            return Ok(running);
        }
        let topo = Arc::new(Topology::with_health(running.config.clone(), health));
        let topo = self.distribute(topo, generation, false)?;
        self.lock().0 = topo.clone();
        Ok(topo)
    }

    /// Hands `topo` to every core (through the discovery thread).
    fn distribute(
        &self,
        topo: Arc<Topology>,
        generation: u64,
        rediscover: bool,
    ) -> Result<Arc<Topology>, String> {
        let (done, served) = bounded(1);
        let ask = DiscoveryReload {
            topo: topo.clone(),
            generation,
            rediscover,
            done,
        };
        self.discovery
            .send(ask)
            .map_err(|_| "the discovery thread is gone".to_string())?;
        // Once sent, it is applied: the discovery thread takes requests in
        // order (its own blocking work is bounded by connect timeouts), so
        // this waits for it rather than report a change that later lands.
        match served.recv() {
            Ok(n) => {
                if n < self.cores {
                    crate::warn!(
                        "{n} of {} cores confirmed the new configuration within {:?}; the others take it when they next look",
                        self.cores,
                        super::cores::RELOAD_CONFIRM_WITHIN
                    );
                }
                Ok(topo)
            }
            Err(_) => Err("the discovery thread is gone".into()),
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
