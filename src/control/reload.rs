//! Configuration reloads (SIGHUP, `POST /reload`) and health changes, on
//! the control side, one at a time: the file is read and checked here; a
//! valid one becomes the next `Generation` (a new immutable `Topology`
//! and the slot maps discovered for it), handed to every core (see
//! `core::reload`), then its discovery to the discovery thread. An invalid
//! one changes nothing and says why.

use crate::config::{Config, ConfigError, Reshard};
use crate::control::cores::{Cores, Generation};
use crate::control::discovery::{self, Directory, Discovery};
use crate::control::{lock, mover, reshard_file};
use crate::topology::migration::{self, MigrationError, Round};
use crate::topology::{Health, Phase, Topology};
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
    /// The running reshard's mover (the last one's, once done).
    pub reshard: Option<Arc<mover::Progress>>,
}

/// Why a reload changed nothing.
#[derive(Debug)]
pub enum ReloadError {
    /// keyway runs from a configuration it was given, not a file.
    NoFile,
    /// The file cannot be read or is not valid.
    Config(ConfigError),
    /// It changes keys (named as in the file) only a restart applies.
    NeedsRestart(Vec<String>),
    /// It would change a placement that is still being resharded.
    Reshard(MigrationError),
    /// A cluster with `reshard = "coordinated"` changes placement only by
    /// `keyway reshard start` (this keyway is one of a fleet).
    NeedsCoordinator { cluster: String },
    /// A fleet's reshard is held here: until it migrates or is released,
    /// nothing else changes.
    Holding,
    /// `hold`: the file changes no placement that moves keys.
    NothingToReshard,
    /// `migrate` or `release` without a hold.
    NotHolding,
    /// Not every core held requests to moving keys in time: the reshard
    /// was called off and the running placement serves on.
    HoldNotConfirmed { held_by: usize, cores: usize },
    /// The placement keys move from could not be kept beside the
    /// configuration (a restart would lose it), so the reshard did not start.
    ReshardNotKept(std::io::Error),
    /// `abort`: the file does not place the cluster as before its reshard.
    NotAnAbort,
    /// `hold`: the file places `cluster` as before its running reshard,
    /// which is an abort (asked for as one, not as a start).
    IsAnAbort { cluster: String },
    /// The running reshard's mover did not stop in time, so its keys
    /// cannot start moving back yet.
    MoverBusy,
    /// `fall`: no reshard here has finished its rising round.
    NotRising,
}

/// What a fleet's hold is asked to start (`keyway reshard start|abort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// A reshard to the placement of the configuration file.
    Start,
    /// Moving a running reshard's keys back: the file places its cluster
    /// as before it.
    Abort,
}

/// A cluster whose reshard a configuration starts.
struct Starting {
    cluster: String,
    reshard: Reshard,
    /// It moves a running reshard's keys back.
    aborts: bool,
}

/// How long the running reshard's mover may take to stop for an abort: a
/// MIGRATE it sent is answered within its connection's timeout.
fn mover_stops_within(topo: &Topology) -> std::time::Duration {
    mover::answered_within(topo) + std::time::Duration::from_secs(1)
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::NoFile => f.write_str("keyway was started without a configuration file"),
            ReloadError::Config(e) => write!(f, "{e}"),
            ReloadError::NeedsRestart(fixed) => write!(
                f,
                "{} cannot change while keyway runs (restart keyway to change {})",
                fixed.join(", "),
                if fixed.len() == 1 { "it" } else { "them" }
            ),
            ReloadError::Reshard(MigrationError::AlreadyMoving { cluster }) => write!(
                f,
                "cluster `{cluster}` is still moving the keys of its last reshard: its endpoints, weights and ring settings cannot change until that ends"
            ),
            ReloadError::NeedsCoordinator { cluster } => write!(
                f,
                "cluster `{cluster}` has reshard = \"coordinated\": change its placement with `keyway reshard start --instances ...` over every keyway in front of it"
            ),
            ReloadError::Holding => f.write_str(
                "a fleet's reshard is held here: it migrates or is released first (keyway reshard start)",
            ),
            ReloadError::NothingToReshard => f.write_str(
                "the configuration file changes no placement of a cluster with reshard = \"migrate\" or \"coordinated\"",
            ),
            ReloadError::NotHolding => f.write_str("no reshard is held here"),
            ReloadError::ReshardNotKept(e) => write!(
                f,
                "the reshard did not start: the placement it moves keys from cannot be kept beside the configuration file: {e}"
            ),
            ReloadError::NotAnAbort => f.write_str(
                "the configuration file does not place any resharding cluster as before its reshard: put its endpoints and weights back to abort",
            ),
            ReloadError::IsAnAbort { cluster } => write!(
                f,
                "the configuration file places cluster `{cluster}` as before its running reshard: that aborts it (keyway reshard abort)"
            ),
            ReloadError::NotRising => f.write_str(
                "no reshard here has moved every key of its rising round yet",
            ),
            ReloadError::MoverBusy => f.write_str(
                "the reshard's background mover did not stop in time; its keys cannot start moving back yet (try again)",
            ),
            ReloadError::HoldNotConfirmed { held_by, cores } => write!(
                f,
                "only {held_by} of {cores} cores held requests to moving keys in time, so the reshard was called off and the running placement serves on"
            ),
        }
    }
}

/// What a reload did, as it is logged and told to whoever asked.
#[derive(Debug)]
pub enum Outcome {
    Reloaded {
        asked_by: String,
        generation: u64,
        clusters: usize,
        endpoints: usize,
    },
    Refused {
        asked_by: String,
        still_serving: u64,
        why: ReloadError,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Reloaded {
                asked_by,
                generation,
                clusters,
                endpoints,
            } => write!(
                f,
                "configuration reloaded ({asked_by}): generation {generation}, {clusters} cluster(s), {endpoints} endpoint(s)"
            ),
            Outcome::Refused {
                asked_by,
                still_serving,
                why,
            } => write!(
                f,
                "configuration reload ({asked_by}) failed, still serving generation {still_serving}: {why}"
            ),
        }
    }
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
    /// The running reshard's mover, and what it did so far.
    reshard: Mutex<Option<Arc<mover::Progress>>>,
    /// A fleet's reshard this keyway holds for (`hold`): the generation
    /// it served before, to go back to if the fleet does not all hold.
    held: Mutex<Option<Held>>,
}

/// A reshard held, waiting for the fleet's word (`migrate` or `release`).
struct Held {
    before: Arc<Topology>,
    generation: u64,
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
            reshard: None,
        };
        Reloader {
            path,
            cores,
            discovery,
            directory,
            state: Mutex::new((topo, status)),
            changing: Mutex::new(()),
            reshard: Mutex::new(None),
            held: Mutex::new(None),
        }
    }

    /// The configuration being served.
    pub fn topology(&self) -> Arc<Topology> {
        self.lock().0.clone()
    }

    pub fn status(&self) -> ReloadStatus {
        let mut status = self.lock().1.clone();
        status.reshard = self.reshard_progress();
        status
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Arc<Topology>, ReloadStatus)> {
        lock(&self.state)
    }

    /// Reads the configuration file again and, if it is valid and can be
    /// applied while running, makes every core serve it. Either way the
    /// outcome is logged and returned.
    pub fn reload(self: &Arc<Self>, asked_by: &str) -> Outcome {
        let _one = lock(&self.changing);
        let (running, generation) = {
            let state = self.lock();
            (state.0.clone(), state.1.generation)
        };
        let applied = self.apply(running, generation + 1);
        let mut state = self.lock();
        let status = &mut state.1;
        let asked_by = asked_by.to_string();
        match applied {
            Ok(topo) => {
                status.generation += 1;
                status.succeeded += 1;
                status.last_reload = Some(SystemTime::now());
                status.last_error = None;
                let outcome = Outcome::Reloaded {
                    asked_by,
                    generation: status.generation,
                    clusters: topo.clusters.len(),
                    endpoints: topo.endpoints.len(),
                };
                crate::log::configure(topo.config.log_level);
                state.0 = topo;
                crate::info!("{outcome}");
                outcome
            }
            Err(why) => {
                status.failed += 1;
                status.last_error = Some(why.to_string());
                let outcome = Outcome::Refused {
                    asked_by,
                    still_serving: status.generation,
                    why,
                };
                crate::error!("{outcome}");
                outcome
            }
        }
    }

    fn apply(
        self: &Arc<Self>,
        running: Arc<Topology>,
        generation: u64,
    ) -> Result<Arc<Topology>, ReloadError> {
        if lock(&self.held).is_some() {
            return Err(ReloadError::Holding);
        }
        let (next, starting) = self.next_topology(&running)?;
        let Some(starting) = starting else {
            return Ok(self.serve(Arc::new(next), generation).0);
        };
        if starting.reshard == Reshard::Coordinated {
            let cluster = starting.cluster;
            return Err(ReloadError::NeedsCoordinator { cluster });
        }
        let held = self.hold_here(running, next, generation)?;
        Ok(self.migrate_here(&held, generation))
    }

    /// The topology of the configuration file, keeping `running`'s
    /// placement where a reshard starts (or one is aborted); with the
    /// (first) cluster whose reshard starts.
    fn next_topology(
        &self,
        running: &Topology,
    ) -> Result<(Topology, Option<Starting>), ReloadError> {
        let Some(path) = &self.path else {
            return Err(ReloadError::NoFile);
        };
        let config = Config::load(path).map_err(ReloadError::Config)?;
        let fixed = needs_restart(&running.config, &config);
        if !fixed.is_empty() {
            return Err(ReloadError::NeedsRestart(fixed));
        }
        for w in config.warnings() {
            crate::warn!("{w}");
        }
        let next = Topology::with_health(config, running.health.clone());
        let next =
            migration::with_previous(next, running, Phase::Hold).map_err(ReloadError::Reshard)?;
        let starting =
            (migration::starting(&next, running).first()).map(|&(ci, aborts)| Starting {
                cluster: next.clusters[ci].name.clone(),
                reshard: next.config.clusters[ci].reshard,
                aborts,
            });
        Ok((next, starting))
    }

    /// The first phase of a reshard here: the placement keys move from is
    /// kept beside the configuration, then every core holds what touches
    /// moving keys (and answers what it sent to their old owners). If a
    /// core does not confirm, `running` serves again. An abort first stops
    /// the running reshard's mover: no key moves forward once one may move
    /// back.
    fn hold_here(
        self: &Arc<Self>,
        running: Arc<Topology>,
        next: Topology,
        generation: u64,
    ) -> Result<Arc<Topology>, ReloadError> {
        let aborts = migration::starting(&next, &running)
            .iter()
            .any(|&(_, aborts)| aborts);
        if aborts && !self.stop_mover(mover_stops_within(&running)) {
            self.start_mover(running);
            return Err(ReloadError::MoverBusy);
        }
        if let Err(e) = self.keep(&next) {
            self.restore(running, generation);
            return Err(ReloadError::ReshardNotKept(e));
        }
        let started = std::time::Instant::now();
        let (held, held_by) = self.serve(Arc::new(next), generation);
        let cores = self.cores.len();
        if held_by < cores {
            crate::error!(
                "{held_by} of {cores} cores held within {:?}: the reshard is called off",
                super::cores::RELOAD_CONFIRM_WITHIN
            );
            self.restore(running, generation);
            return Err(ReloadError::HoldNotConfirmed { held_by, cores });
        }
        crate::info!(
            "reshard held: every core held within {:?}",
            started.elapsed()
        );
        Ok(held)
    }

    /// The second phase: keys move, as clients touch them and in the
    /// background.
    fn migrate_here(self: &Arc<Self>, held: &Topology, generation: u64) -> Arc<Topology> {
        let migrating = Arc::new(migration::in_phase(held, Phase::Migrate));
        // No longer held: a restart from here moves keys at once.
        self.keep_or_say(&migrating);
        self.distribute(Generation {
            number: generation,
            topo: migrating.clone(),
            discovered: None,
        });
        crate::info!("reshard started: keys move to their new owners");
        self.start_mover(migrating.clone());
        migrating
    }

    /// A fleet's reshard, first phase (`POST /reshard/hold`, or
    /// `/reshard/abort` for `Intent::Abort`): this keyway reads its file
    /// and holds the reshard it starts. Ok: the generation now served.
    pub fn hold(self: &Arc<Self>, intent: Intent) -> Result<u64, ReloadError> {
        self.hold_for_fleet("reshard held", |running| {
            let (next, starting) = self.next_topology(running)?;
            match (starting, intent) {
                (None, Intent::Start) => Err(ReloadError::NothingToReshard),
                (Some(s), Intent::Abort) if !s.aborts => Err(ReloadError::NotAnAbort),
                (None, Intent::Abort) => Err(ReloadError::NotAnAbort),
                (Some(s), Intent::Start) if s.aborts => {
                    Err(ReloadError::IsAnAbort { cluster: s.cluster })
                }
                _ => Ok(next),
            }
        })
    }

    /// A fleet's hold, of the topology `next` makes of the running one:
    /// held here, and the running one kept to go back to on release. Ok:
    /// the generation now served.
    fn hold_for_fleet(
        self: &Arc<Self>,
        what: &str,
        next: impl FnOnce(&Topology) -> Result<Topology, ReloadError>,
    ) -> Result<u64, ReloadError> {
        let _one = lock(&self.changing);
        if lock(&self.held).is_some() {
            return Err(ReloadError::Holding);
        }
        let (running, generation) = {
            let state = self.lock();
            (state.0.clone(), state.1.generation + 1)
        };
        let next = next(&running)?;
        let held = self.hold_here(running.clone(), next, generation)?;
        *lock(&self.held) = Some(Held {
            before: running,
            generation,
        });
        self.settle(held, what);
        Ok(generation)
    }

    /// A fleet's reshard, second phase (`POST /reshard/migrate`): every
    /// keyway of the fleet holds, so keys move.
    pub fn migrate(self: &Arc<Self>) -> Result<u64, ReloadError> {
        let _one = lock(&self.changing);
        let held = lock(&self.held).take().ok_or(ReloadError::NotHolding)?;
        let topo = self.lock().0.clone();
        let migrating = self.migrate_here(&topo, held.generation);
        self.lock().0 = migrating;
        Ok(held.generation)
    }

    /// A fleet's reshard called off (`POST /reshard/release`): the
    /// placement served before the hold serves again, as a new generation.
    pub fn release(self: &Arc<Self>) -> Result<u64, ReloadError> {
        let _one = lock(&self.changing);
        let held = lock(&self.held).take().ok_or(ReloadError::NotHolding)?;
        let generation = held.generation + 1;
        self.end_reshard(held.before, generation, "reshard released");
        Ok(generation)
    }

    /// A reshard over (ended or released): `topo` serves as generation
    /// `generation`, recorded as served.
    fn end_reshard(self: &Arc<Self>, topo: Arc<Topology>, generation: u64, what: &str) {
        let served = self.restore(topo, generation);
        self.settle(served, what);
    }

    /// `topo` serves as generation `generation`, with the reshard it
    /// migrates (if any: a released or failed abort goes back to the
    /// reshard it would have aborted) kept beside the configuration and
    /// its mover running.
    fn restore(self: &Arc<Self>, topo: Arc<Topology>, generation: u64) -> Arc<Topology> {
        let (served, _) = self.serve(topo, generation);
        self.keep_or_say(&served);
        let migrating = (served.clusters.iter())
            .filter_map(|c| c.migration.as_ref())
            .any(|m| m.phase == Phase::Migrate);
        if migrating {
            self.start_mover(served.clone());
        }
        served
    }

    /// Keeps `topo`'s reshard beside the configuration file, if keyway
    /// runs from one (see `reshard_file::keep`).
    fn keep(&self, topo: &Topology) -> std::io::Result<()> {
        match &self.path {
            Some(path) => reshard_file::keep(path, topo),
            None => Ok(()),
        }
    }

    /// `keep`, a failure logged: `topo` serves already.
    fn keep_or_say(&self, topo: &Topology) {
        if let Err(e) = self.keep(topo) {
            crate::error!("cannot keep the reshard beside the configuration: {e}");
        }
    }

    /// Stops the running reshard's mover and waits (`within` at most)
    /// until it has: a MIGRATE it sent is answered. False: it is still
    /// at it.
    fn stop_mover(&self, within: std::time::Duration) -> bool {
        match self.reshard_progress() {
            Some(p) => p.stop_and_wait(within),
            None => true,
        }
    }

    /// Records `topo` as served, one generation on.
    fn settle(&self, topo: Arc<Topology>, what: &str) {
        let mut state = self.lock();
        state.1.generation += 1;
        state.1.last_reload = Some(SystemTime::now());
        state.0 = topo;
        crate::info!("{what}: generation {}", state.1.generation);
    }

    /// Moves the keys of `topo`'s migration in the background; once every
    /// old owner was scanned, the new placement serves alone.
    fn start_mover(self: &Arc<Self>, topo: Arc<Topology>) {
        // One mover at a time: one started again replaces the last.
        let last = self.reshard_progress();
        if let Some(last) = &last {
            last.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let me = Arc::downgrade(self);
        let of = topo.clone();
        let finished = move || {
            if let Some(reloader) = me.upgrade() {
                reloader.passed(&of);
            }
        };
        match mover::spawn(topo, last.as_deref(), finished) {
            Ok(progress) => *lock(&self.reshard) = Some(progress),
            Err(e) => crate::error!(
                "cannot start the reshard mover: {e}; keys move as clients touch them"
            ),
        }
    }

    /// Holds again the fleet's reshard a restart interrupted in its hold
    /// phase (keyway started with it held): `migrate` or `release` go on
    /// from there, `before` serving if released.
    pub fn resume_held(&self, before: Arc<Topology>) {
        *lock(&self.held) = Some(Held {
            before,
            generation: self.lock().1.generation,
        });
    }

    /// Resumes the reshard `topo` (the one keyway started with) carries
    /// from before a restart: its mover scans the old owners again.
    pub fn resume(self: &Arc<Self>, topo: Arc<Topology>) {
        self.start_mover(topo);
    }

    /// The running reshard's progress (the last one's, once done).
    pub fn reshard_progress(&self) -> Option<Arc<mover::Progress>> {
        lock(&self.reshard).clone()
    }

    /// The mover's pass over `of` is complete, if `of`'s stage still
    /// runs: after the rising round, the falling one starts (here, or on
    /// the fleet's word); after the falling one every key moved, so the
    /// new placement serves alone, without the old ring and the endpoints
    /// only it had, as the next generation.
    fn passed(self: &Arc<Self>, of: &Topology) {
        let _one = lock(&self.changing);
        let (running, generation) = {
            let state = self.lock();
            (state.0.clone(), state.1.generation)
        };
        if migration::stage(&running) != migration::stage(of) {
            return;
        }
        if migration::round_of(&running) == Some(Round::Rising) {
            if migration::coordinated(&running) {
                crate::info!("reshard: every key of the rising round moved; the falling round starts when the fleet's `keyway reshard start` sees every instance there");
                return;
            }
            if let Ok(falling) = self.fall_here(running, generation + 1) {
                self.settle(
                    falling,
                    "reshard: the rising round is over, keys moving to lower addresses move now",
                );
            }
            return;
        }
        let next = Topology::with_health(running.config.clone(), running.health.clone());
        let what = "reshard finished: every key moved, the new placement serves alone";
        self.end_reshard(Arc::new(next), generation + 1, what);
    }

    /// The falling round of `running`'s reshard, here: held, then moving.
    fn fall_here(
        self: &Arc<Self>,
        running: Arc<Topology>,
        generation: u64,
    ) -> Result<Arc<Topology>, ReloadError> {
        let next = migration::falling(&running).ok_or(ReloadError::NotRising)?;
        let held = self.hold_here(running, next, generation)?;
        Ok(self.migrate_here(&held, generation))
    }

    /// A fleet's falling round, first phase (`POST /reshard/fall`): every
    /// instance's rising round is over; this one holds the falling round.
    pub fn hold_falling(self: &Arc<Self>) -> Result<u64, ReloadError> {
        self.hold_for_fleet("reshard's falling round held", |running| {
            let rising_done = self
                .reshard_progress()
                .is_some_and(|p| p.is_done() && p.round == Round::Rising);
            match migration::falling(running) {
                Some(next) if rising_done => Ok(next),
                _ => Err(ReloadError::NotRising),
            }
        })
    }

    /// Makes every core serve `topo` as generation `generation`, its Redis
    /// Clusters discovered first (so that their first requests find a slot
    /// map), then hands its discovery to the discovery thread.
    fn serve(&self, topo: Arc<Topology>, generation: u64) -> (Arc<Topology>, usize) {
        let mut discovery = Discovery::claiming(topo.clone(), generation, self.directory.clone());
        discovery.initial();
        let served = self.distribute(Generation {
            number: generation,
            topo: topo.clone(),
            discovered: Some(discovery.found()),
        });
        // The cores serve it already: a discovery thread that is gone costs
        // refreshes, not the reload.
        if self.discovery.send(discovery).is_err() {
            crate::error!("the discovery thread is gone: slot maps will not be refreshed");
        }
        (topo, served)
    }

    /// The running configuration with `health`'s endpoints down (the
    /// health monitor's doing); its generation stays.
    pub fn set_health(&self, health: Health) -> Arc<Topology> {
        let _one = lock(&self.changing);
        let (running, generation) = {
            let state = self.lock();
            (state.0.clone(), state.1.generation)
        };
        if running.health == health {
            return running;
        }
        let next = Topology::with_health(running.config.clone(), health);
        // A reshard in progress goes on (its cluster has no auto_eject).
        let topo = Arc::new(migration::carry_over(next, &running));
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
    fn distribute(&self, generation: Generation) -> usize {
        let cores = self.cores.len();
        let served = self.cores.reload(generation);
        if served < cores {
            crate::warn!(
                "{served} of {cores} cores confirmed the new configuration within {:?}; the others take it when they next look",
                super::cores::RELOAD_CONFIRM_WITHIN
            );
        }
        served
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
