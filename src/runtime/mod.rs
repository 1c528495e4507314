//! Start-up and the control thread: pick CPUs, check io_uring and locked
//! memory, start one pinned core per CPU (`core`: its listener, sessions
//! and upstreams), start the control plane (`crate::control`), then wait
//! for signals.
pub mod admission;
pub mod core;
pub mod memory;
mod start_error;

pub use start_error::{CoreStartError, StartError};

use crate::config::{Config, Cores as CoreChoice};
use crate::control::admin::Admin;
use crate::control::cores::{Cores, Generation};
use crate::control::discovery::Discovery;
use crate::control::reload;
use crate::net::doorbell::{Doorbell, RingingSender};
use crate::stats::latency;
use crate::topology::Topology;
use crossbeam_channel::{bounded, unbounded};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn dump_latency(topo: &Topology, cores: &Cores, why: &str) {
    let dir = &topo.config.dump_dir();
    match latency::dump(dir, &cores.snapshots()) {
        Ok(summary) => {
            crate::info!("latency dump ({why}) in {}:", dir.display());
            eprint!("{summary}");
        }
        Err(e) => crate::error!("cannot write the latency dump to {}: {e}", dir.display()),
    }
}

/// Runs the proxy until SIGTERM or SIGINT. Err: why it could not start.
/// `path` is where the configuration came from: reloads read it again.
pub fn run(config: Config, path: Option<std::path::PathBuf>) -> Result<(), StartError> {
    // First: a SIGHUP (systemctl reload) or SIGTERM from now on is handled,
    // not the default action (which ends the process).
    let signals = block_signals();
    crate::log::configure(config.log_level);
    crate::stats::started_at();
    let cpus = pick_cpus(&config.cores)?;
    let seats = admit_clients(&config, cpus.len());
    let ring_mode = crate::net::probe()?;
    crate::info!(
        "io_uring {} ({}): multishot accept and recv, provided buffers",
        ring_mode.name(),
        ring_mode.describe()
    );
    // Each core binds with SO_REUSEPORT, which would let this process
    // silently share a port another keyway (or anything) listens on.
    refuse_taken_port(config.listen)?;
    if let Some(addr) = config.tls.as_ref().and_then(|t| t.listen) {
        refuse_taken_port(addr)?;
    }
    let (topo, held) = first_topology(config, path.as_deref())?;
    let topo = Arc::new(topo);
    let resuming = topo.clusters.iter().any(|c| c.migration.is_some());
    // Redis Clusters are discovered before the cores start, so that their
    // first requests find a slot map (a cluster that does not answer yet
    // does not hold keyway back).
    let mut discovery = Discovery::new(topo.clone());
    let admin_listener = match topo.config.admin_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .map_err(|why| StartError::AdminListen { addr, why })?,
        ),
        None => None,
    };
    let (refresh_tx, refresh_rx) = bounded(256);
    let (reports, from_cores) = crate::upstream::reports::Reports::channel();
    discovery.initial();
    let shared = Shared {
        ring_mode,
        first: Generation {
            number: 1,
            topo: topo.clone(),
            discovered: Some(discovery.found()),
        },
        refresh: refresh_tx,
        seats: seats.clone(),
        reports: reports.clone(),
    };
    let cores = start_cores(&cpus, shared)?;
    let handles = Cores::new(cores.iter().map(|(tx, _)| tx.clone()).collect());
    let directory = discovery.directory();
    let (next_tx, next_rx) = bounded(1);
    discovery
        .spawn(handles.clone(), refresh_rx, next_rx)
        .map_err(thread("cluster discovery"))?;
    let reloader = Arc::new(reload::Reloader::new(
        path,
        topo.clone(),
        handles.clone(),
        next_tx,
        directory.clone(),
    ));
    match held {
        Some(before) => reloader.resume_held(Arc::new(before)),
        None if resuming => reloader.resume(topo.clone()),
        None => {}
    }
    let monitor = crate::control::health::Monitor::new(reloader.clone(), reports, from_cores);
    let health = monitor.table();
    monitor.spawn().map_err(thread("health"))?;
    let stopping = Arc::new(AtomicBool::new(false));
    if let Some(l) = admin_listener {
        let admin = Admin {
            health,
            directory,
            reloader: reloader.clone(),
            cores: handles.clone(),
            stopping: stopping.clone(),
            top: Default::default(),
        };
        admin.spawn(l).map_err(thread("admin"))?;
    }
    crate::info!(
        "listening on {} with {} core(s) (cpus {:?}), {} cluster(s), {} endpoint(s), max_clients {}",
        topo.config.listen,
        cpus.len(),
        cpus,
        topo.clusters.len(),
        topo.endpoints.len(),
        seats.max()
    );
    serve_signals(&signals, &reloader, &handles);
    stopping.store(true, Ordering::Relaxed);
    // Files at shutdown only where the operator asked for them.
    let topo = reloader.topology();
    if topo.config.latency_dir.is_some() {
        dump_latency(&topo, &handles, "shutdown");
    } else {
        crate::info!("latency at shutdown (set [admin] latency_dir to keep the histograms):");
        eprint!("{}", latency::summary_text(&handles.snapshots()));
    }
    stop_all(cores);
    crate::info!("stopped");
    Ok(())
}

/// Raises the limits keyway needs (locked memory for the rings, file
/// descriptors) and sets how many clients may connect: `max_clients`, or
/// what the descriptors left after upstream connections allow.
fn admit_clients(config: &Config, cores: usize) -> Arc<admission::ClientSeats> {
    raise_memlock();
    let nofile = raise_nofile();
    let upstream_per_core: usize = config
        .clusters
        .iter()
        .map(|c| c.endpoints.len() * c.connections_per_endpoint)
        .sum();
    let reserved = admission::reserved_descriptors(cores, upstream_per_core);
    let (max_clients, lowered) = admission::client_limit(config.max_clients, nofile, reserved);
    if let Some(why) = lowered {
        crate::warn!("{why}");
    }
    admission::ClientSeats::new(max_clients)
}

/// What every core starts with.
struct Shared {
    ring_mode: crate::net::ring::Mode,
    first: Generation,
    refresh: crossbeam_channel::Sender<usize>,
    seats: Arc<admission::ClientSeats>,
    reports: crate::upstream::reports::Reports,
}

/// A running core: its control channel and its thread.
type CoreThread = (
    RingingSender<crate::control::cores::CoreMsg>,
    std::thread::JoinHandle<()>,
);

/// Starts one pinned core per CPU and waits until every one listens; Err
/// (every core stopped) when one cannot start.
fn start_cores(cpus: &[usize], shared: Shared) -> Result<Vec<CoreThread>, StartError> {
    let (started_tx, started_rx) = unbounded();
    // Each core's doorbell, rung after every message to it.
    let bells = cpus
        .iter()
        .map(|_| Doorbell::new())
        .collect::<Result<Vec<_>, _>>()
        .map_err(StartError::Doorbell)?;
    // Each core's inbox for the others' CLIENT LIST and KILL.
    let (client_inboxes, mut client_asks): (Vec<_>, Vec<_>) = bells
        .iter()
        .map(|bell| {
            let (tx, rx) = bounded(64);
            (RingingSender::new(tx, bell.clone()), rx)
        })
        .unzip();
    client_asks.reverse();
    let mut cores = Vec::new();
    for (index, &cpu) in cpus.iter().enumerate() {
        let (tx, rx) = bounded(64);
        let tx = RingingSender::new(tx, bells[index].clone());
        let spec = core::CoreSpec {
            index,
            ring_mode: shared.ring_mode,
            cores: cpus.len(),
            cpu,
            first: shared.first.clone(),
            refresh: shared.refresh.clone(),
            control: rx,
            client_inboxes: client_inboxes.clone(),
            client_asks: client_asks.pop().expect("one inbox per core"),
            bell: bells[index].clone(),
            started: started_tx.clone(),
            seats: shared.seats.clone(),
            reports: shared.reports.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("keyway-core{index}"))
            .spawn(move || core::run_core(spec))
            .map_err(|e| StartError::Core {
                index,
                cpu,
                why: CoreStartError::Thread(e),
            });
        match thread {
            Ok(thread) => cores.push((tx, thread)),
            Err(e) => {
                stop_all(cores);
                return Err(e);
            }
        }
    }
    drop(started_tx);
    for _ in 0..cpus.len() {
        let failed = match started_rx.recv() {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => e,
            Err(_) => StartError::CoreGone,
        };
        stop_all(cores);
        return Err(failed);
    }
    Ok(cores)
}

/// How long a port taken at start-up may take to be freed (see
/// `refuse_taken_port`).
const PORT_FREED_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// The topology keyway starts with: `config`, and the reshard a restart
/// interrupted, if the file beside `path` keeps one; with, if that reshard
/// was held for a fleet's word, what serves if the fleet releases it.
fn first_topology(
    config: Config,
    path: Option<&std::path::Path>,
) -> Result<(Topology, Option<Topology>), StartError> {
    let topo = Topology::build(config);
    let Some(path) = path else {
        return Ok((topo, None));
    };
    match crate::control::reshard_file::resumed(path, &topo).map_err(StartError::Reshard)? {
        Some(resumed) if resumed.held.is_some() => {
            crate::warn!("a restart interrupted a fleet's reshard in its hold phase: it holds again until `keyway reshard migrate` or `release` (requests to moving keys wait, then get TRYAGAIN)");
            Ok((resumed.topo, resumed.held))
        }
        Some(resumed) => {
            crate::info!("resuming the reshard a restart interrupted");
            Ok((resumed.topo, None))
        }
        None => Ok((topo, None)),
    }
}

/// A control-side thread named `name` that could not start.
fn thread(name: &'static str) -> impl FnOnce(std::io::Error) -> StartError {
    move |why| StartError::Thread { name, why }
}

/// Tells every core to stop and waits for their threads.
fn stop_all(cores: Vec<CoreThread>) {
    for (tx, _) in &cores {
        let _ = tx.send(crate::control::cores::CoreMsg::Stop);
    }
    for (_, t) in cores {
        let _ = t.join();
    }
}

/// Serves signals until SIGTERM or SIGINT: SIGHUP reloads, SIGUSR2 dumps
/// latency.
fn serve_signals(signals: &libc::sigset_t, reloader: &Arc<reload::Reloader>, cores: &Cores) {
    loop {
        let sig = wait_signal(signals);
        match sig {
            libc::SIGTERM | libc::SIGINT => {
                crate::info!("signal {sig}: draining and stopping");
                return;
            }
            libc::SIGHUP => {
                // Logged either way; a failed reload leaves the old one.
                let _ = reloader.reload("SIGHUP");
            }
            libc::SIGUSR2 => dump_latency(&reloader.topology(), cores, "SIGUSR2"),
            _ => {}
        }
    }
}

/// Fails when something already listens on `addr`: a plain bind, without
/// SO_REUSEPORT, is refused then (Redis and twemproxy fail the same way).
/// The check binds without listening: a listening check would accept
/// connections for a moment, which then find the port closed.
fn refuse_taken_port(addr: std::net::SocketAddr) -> Result<(), StartError> {
    if addr.port() == 0 {
        return Ok(());
    }
    // A keyway that just died (SIGKILL, a crash) still holds its listener
    // for a moment: its io_uring lets its sockets go after the process
    // ends. Restarted at once, wait for that rather than fail.
    let deadline = std::time::Instant::now() + PORT_FREED_WITHIN;
    loop {
        match crate::net::listener::check_port_free(addr) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if std::time::Instant::now() >= deadline {
                    return Err(StartError::PortTaken(addr));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(why) => return Err(StartError::Listen { addr, why }),
        }
    }
}

fn pick_cpus(cores: &CoreChoice) -> Result<Vec<usize>, StartError> {
    let mut available: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    available.sort_unstable();
    if available.is_empty() {
        return Err(StartError::NoCpuList);
    }
    match cores {
        CoreChoice::All => Ok(available),
        CoreChoice::Count(n) if *n <= available.len() => Ok(available[..*n].to_vec()),
        CoreChoice::Count(n) => Err(StartError::TooFewCpus {
            asked: *n,
            available,
        }),
        CoreChoice::List(ids) => match ids.iter().find(|id| !available.contains(id)) {
            Some(&cpu) => Err(StartError::CpuNotAvailable { cpu, available }),
            None => Ok(ids.clone()),
        },
    }
}

/// Every client connection is a descriptor: take the hard limit, as Redis
/// does for maxclients (the soft limit is often 1024). Returns the limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// io_uring needs locked memory; raise the soft limit (and the hard one
/// when allowed) so glommio's rings fit.
fn raise_memlock() {
    const WANT: libc::rlim_t = 64 * 1024 * 1024;
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 || lim.rlim_cur >= WANT {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: WANT,
            rlim_max: lim.rlim_max.max(WANT),
        };
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) != 0 && lim.rlim_max > lim.rlim_cur {
            let soft = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &soft);
        }
    }
}

/// Blocks the signals the control thread handles, before any other thread
/// starts (threads inherit the mask), so only `wait_signal` sees them.
fn block_signals() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        // SIGUSR2 dumps latency (glommio itself uses SIGUSR1).
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR2] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    unsafe {
        libc::sigwait(set, &mut sig);
    }
    sig
}
