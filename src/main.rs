//! The `keyway` command line: run, check a configuration, show where keys
//! go, or import the configuration of the proxy keyway replaces.

use clap::{Parser, Subcommand};
use keyway::config::Config;
use keyway::topology::router::Router;
use keyway::topology::slots::key_slot;
use keyway::topology::Topology;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "keyway",
    version,
    about = "A thread-per-core io_uring Redis/Valkey proxy"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    /// Configuration file (TOML); runs the proxy.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// error, warn, info or debug; wins over the configuration's `[log] level`.
    #[arg(long, value_parser = parse_level)]
    log_level: Option<keyway::log::Level>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate a configuration and exit 0 (valid) or 1.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the summary of a latency dump directory, or chart it.
    Latency {
        /// The dump directory (`[admin] latency_dir`); with --plot, a
        /// second one is drawn over it (before and after).
        #[arg(required = true, num_args = 1..=2)]
        dirs: Vec<PathBuf>,
        /// Write HdrHistogram's percentile chart of the dump(s) here (SVG).
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// A running keyway's picture in the terminal (per core, per endpoint,
    /// hot keys), refreshed every --interval seconds, from its admin
    /// endpoint.
    Top {
        /// The admin endpoint (`[admin] listen`).
        #[arg(long, default_value = "127.0.0.1:9901")]
        instance: String,
        /// A file holding the admin token, if `[admin] token` is set.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Print two looks (the second with rates) and exit.
        #[arg(long)]
        once: bool,
    },
    /// Print the cluster and endpoint of each key (no proxy needed).
    Route {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Print the keyway configuration (TOML) equivalent to an Envoy or
    /// twemproxy one: keys stay where that proxy placed them.
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// A reshard's progress on running keyways, or pause or resume their
    /// background movers (a reshard starts with a reload: see README).
    Reshard {
        action: ReshardAction,
        /// Admin endpoints (`[admin] listen`), comma-separated.
        #[arg(long, required = true, value_delimiter = ',')]
        instances: Vec<String>,
        /// A file holding the admin token, if `[admin] token` is set.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// start|abort: the configuration every instance's file now holds;
        /// keys move only if each instance places them as it does.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReshardAction {
    /// Over every instance at once: each reads its configuration file and
    /// holds; only when all hold do they move keys (else all release).
    Start,
    /// As start, moving a running reshard's keys back: each instance's
    /// configuration file places the cluster as before the reshard again.
    Abort,
    Status,
    Pause,
    Resume,
    /// Recovery, one instance at a time: the second phase of `start`.
    Migrate,
    /// Recovery, one instance at a time: call off a held reshard.
    Release,
}

#[derive(Subcommand)]
enum ImportFrom {
    /// An Envoy bootstrap (YAML) with a redis_proxy listener in
    /// static_resources.
    Envoy {
        file: PathBuf,
        /// The redis_proxy listener to import (default: the first).
        #[arg(long)]
        listener: Option<String>,
        /// Listen on this host:port instead of the listener's address.
        #[arg(long)]
        listen: Option<String>,
    },
    /// A twemproxy (nutcracker) configuration (YAML).
    Twemproxy {
        file: PathBuf,
        /// The pool to import (default: the first).
        #[arg(long)]
        pool: Option<String>,
        /// Listen on this host:port instead of the pool's address.
        #[arg(long)]
        listen: Option<String>,
    },
}

/// Prints the imported TOML on stdout, what was chosen or left out on
/// stderr; a refusal prints nothing on stdout and exits 1.
fn import(from: ImportFrom) -> ExitCode {
    use keyway::import::{self, Options};
    let (file, opts, run): (PathBuf, Options, fn(&str, &str, &Options) -> _) = match from {
        ImportFrom::Envoy {
            file,
            listener,
            listen,
        } => (
            file,
            Options {
                select: listener,
                listen,
            },
            import::envoy,
        ),
        ImportFrom::Twemproxy { file, pool, listen } => (
            file,
            Options {
                select: pool,
                listen,
            },
            import::twemproxy,
        ),
    };
    let name = file.display().to_string();
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("keyway: {name}: cannot read: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&text, &name, &opts) {
        Ok(out) => {
            for n in &out.notes {
                eprintln!("keyway: {n}");
            }
            // Files it names (certificates) or hosts may exist only where
            // keyway will run: say so, but print the result.
            if let Err(e) = Config::parse(&out.toml, "(imported)") {
                eprintln!("keyway: warning: the imported configuration does not pass `keyway check` here: {e}");
            }
            print!("{}", out.toml);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keyway: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `keyway reshard ...`: one admin request per instance, its answer printed.
fn reshard(
    action: ReshardAction,
    instances: &[String],
    token_file: Option<&Path>,
    config: Option<&Path>,
) -> ExitCode {
    let token = match read_token(token_file) {
        Ok(token) => token,
        Err(code) => return code,
    };
    let placement = match config.map(load).transpose() {
        Ok(c) => c.map(|c| keyway::control::reshard_file::placement_digest(&c)),
        Err(code) => return code,
    };
    let fleet = Fleet {
        instances,
        token: token.as_deref(),
        placement,
    };
    match action {
        ReshardAction::Start => return reshard_start(&fleet, "/reshard/hold"),
        ReshardAction::Abort => return reshard_start(&fleet, "/reshard/abort"),
        _ => {}
    }
    let (method, path) = match action {
        ReshardAction::Start | ReshardAction::Abort | ReshardAction::Status => ("GET", "/reshard"),
        ReshardAction::Pause => ("POST", "/reshard/pause"),
        ReshardAction::Resume => ("POST", "/reshard/resume"),
        ReshardAction::Migrate => ("POST", "/reshard/migrate"),
        ReshardAction::Release => ("POST", "/reshard/release"),
    };
    let mut ok = true;
    for instance in instances {
        match admin_request(instance, method, path, token.as_deref()) {
            Ok((status, body)) => {
                ok &= (200..300).contains(&status);
                print!("{instance}: {body}");
            }
            Err(e) => {
                ok = false;
                println!("{instance}: cannot ask ({e})");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The keyways `keyway reshard` speaks to.
struct Fleet<'a> {
    instances: &'a [String],
    token: Option<&'a str>,
    /// The digest of where the operator's file places keys (`--config`).
    placement: Option<String>,
}

/// A fleet's reshard (or its abort): every instance holds (`hold`: the
/// admin path that does), then every one migrates; if one does not hold,
/// or they do not all place keys alike (as `--config` does, if given),
/// those that did release and nothing moved. Keys move in two rounds (see
/// `topology::migration::Round`): once every instance's mover has moved
/// the rising round's keys, the falling round is held and migrated the
/// same way; the command returns when the reshard is over everywhere. Run
/// again on a fleet already resharding, it picks up where that is.
fn reshard_start(fleet: &Fleet, hold: &str) -> ExitCode {
    let (instances, token) = (fleet.instances, fleet.token);
    // The answer's body, if it is a success.
    let answer = |instance: &String, path: &str| -> Option<String> {
        match admin_request(instance, "POST", path, token) {
            Ok((status, body)) => {
                print!("{instance}: {body}");
                (200..300).contains(&status).then_some(body)
            }
            Err(e) => {
                println!("{instance}: cannot ask ({e})");
                None
            }
        }
    };
    let ask = |instance: &String, path: &str| answer(instance, path).is_some();
    // Holds every one of `instances` with `hold`, then migrates every one.
    let switch = |instances: &[&String], hold: &str, what: &str| -> bool {
        let mut holding = Vec::new();
        let mut placements = fleet.placement.iter().cloned().collect::<Vec<_>>();
        for &instance in instances {
            let Some(body) = answer(instance, hold) else {
                for held in holding {
                    ask(held, "/reshard/release");
                }
                eprintln!(
                    "keyway: the {what} did not start: {instance} did not hold (the others released)"
                );
                return false;
            };
            holding.push(instance);
            placements.extend(
                body.split("placement ")
                    .nth(1)
                    .map(|p| p.trim().to_string()),
            );
        }
        placements.dedup();
        if placements.len() > 1 {
            for held in holding {
                ask(held, "/reshard/release");
            }
            eprintln!("keyway: the {what} did not start: the instances' configuration files (or --config) place keys differently (placements {}); they released", placements.join(", "));
            return false;
        }
        let mut ok = true;
        for &instance in instances {
            ok &= ask(instance, "/reshard/migrate");
        }
        if !ok {
            eprintln!("keyway: an instance did not take the migrate phase: it still holds (its clients get TRYAGAIN on moving keys); once it answers, run `keyway reshard migrate --instances` for it");
        }
        ok
    };
    let rounds = || {
        instances
            .iter()
            .map(|i| mover_round(i, token))
            .collect::<Vec<_>>()
    };
    let going =
        |r: &Option<Mover>| matches!(r, Some(m) if m.state != "done" || m.round == "rising");
    // `start` over a fleet already resharding picks up where it is; an
    // abort always starts.
    let aborting = hold == "/reshard/abort";
    if aborting || !rounds().iter().all(going) {
        let what = if aborting { "abort" } else { "reshard" };
        if !switch(&instances.iter().collect::<Vec<_>>(), hold, what) {
            return ExitCode::FAILURE;
        }
    }
    for (round, next) in [("rising", Some("/reshard/fall")), ("falling", None)] {
        // Until every instance's mover has moved its round's keys.
        loop {
            let now = rounds();
            let done = |r: &Option<Mover>| matches!(r, Some(m) if (m.round == round && m.state == "done") || (round == "rising" && m.round == "falling"));
            if now.iter().all(done) {
                break;
            }
            if now.iter().any(Option::is_none) {
                eprintln!("keyway: an instance does not say how its reshard goes; `keyway reshard start` again once it answers picks up from there");
                return ExitCode::FAILURE;
            }
            if now
                .iter()
                .any(|r| matches!(r, Some(m) if m.state == "paused"))
            {
                eprintln!("keyway: a mover is paused: `keyway reshard resume`, then `keyway reshard start` again picks up from there");
                return ExitCode::FAILURE;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        println!("every instance has moved the keys of the {round} round");
        // A fleet's instances start the next round together; one that is
        // not part of a fleet started it itself.
        let waiting: Vec<&String> = (instances.iter().zip(rounds()))
            .filter(|(_, r)| matches!(r, Some(m) if m.fleet && m.round == "rising"))
            .map(|(i, _)| i)
            .collect();
        if let Some(hold) = next.filter(|_| !waiting.is_empty()) {
            if !switch(&waiting, hold, "falling round") {
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// An instance's reshard mover, as `GET /reshard` shows it.
struct Mover {
    round: String,
    /// `moving`, `paused` or `done`.
    state: String,
    /// Its reshard is a fleet's: its rounds start on the fleet's word.
    fleet: bool,
}

/// An instance's reshard mover; None if it does not say.
fn mover_round(instance: &str, token: Option<&str>) -> Option<Mover> {
    let (status, body) = admin_request(instance, "GET", "/reshard", token).ok()?;
    if status != 200 {
        return None;
    }
    let field = |name: &str| -> Option<String> {
        let key = format!("\"{name}\":\"");
        let at = body.find(&key)? + key.len();
        Some(body[at..].split('"').next()?.to_string())
    };
    Some(Mover {
        round: field("round")?,
        state: field("state")?,
        fleet: body.contains("\"fleet\":true"),
    })
}

/// `keyway top`: GET /top every `interval` seconds, each on a cleared
/// screen; with `once`, two looks a second apart (rates need two), the
/// second printed, and out.
fn top(instance: &str, token_file: Option<&Path>, interval: f64, once: bool) -> ExitCode {
    let token = match read_token(token_file) {
        Ok(token) => token,
        Err(code) => return code,
    };
    let pause = std::time::Duration::from_secs_f64(interval.clamp(0.1, 3600.0));
    let mut looks = 0u64;
    loop {
        let screen = match admin_request(instance, "GET", "/top", token.as_deref()) {
            Ok((200, body)) => body,
            Ok((status, body)) => format!("{instance} answered {status}: {body}"),
            Err(e) => format!("cannot reach {instance} ({e}); trying again"),
        };
        looks += 1;
        if once {
            if looks == 2 {
                print!("{screen}");
                return ExitCode::SUCCESS;
            }
        } else {
            // Home, clear, then the screen.
            print!("\x1b[H\x1b[2J{screen}");
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        }
        std::thread::sleep(if once {
            std::time::Duration::from_secs(1)
        } else {
            pause
        });
    }
}

/// `keyway latency DIR [DIR2] [--plot FILE]`: the summary of a dump, or
/// the chart of one or two.
fn latency(dirs: &[PathBuf], plot: Option<&Path>) -> ExitCode {
    let Some(file) = plot else {
        let [dir] = dirs else {
            eprintln!("keyway: two dumps are compared with --plot FILE.svg");
            return ExitCode::FAILURE;
        };
        return match std::fs::read_to_string(dir.join("summary.txt")) {
            Ok(s) => {
                print!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "keyway: {}: no latency dump here ({e}); send SIGUSR2 or POST /latency/dump",
                    dir.display()
                );
                ExitCode::FAILURE
            }
        };
    };
    let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let chart = match keyway::stats::latency::chart(&dirs) {
        Ok(chart) => chart,
        Err(e) => {
            eprintln!("keyway: {e}");
            return ExitCode::FAILURE;
        }
    };
    match std::fs::write(file, chart) {
        Ok(()) => {
            println!("wrote {}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keyway: cannot write {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// The admin token kept in `file` (`--token-file`), if one is named.
fn read_token(file: Option<&Path>) -> Result<Option<String>, ExitCode> {
    match file.map(std::fs::read_to_string).transpose() {
        Ok(t) => Ok(t.map(|t| t.trim().to_string())),
        Err(e) => {
            eprintln!("keyway: cannot read the token file: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// One HTTP/1.1 request to a keyway admin endpoint: (status, body).
fn admin_request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    // An abort's hold waits for the running mover to stop (a MIGRATE out
    // may take op_timeout, 10 s at least).
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_string()))
}

/// Loads and validates the configuration; what an operator should know
/// about it (exposure) is printed by every command that reads it.
fn load(path: &Path) -> Result<Config, ExitCode> {
    let c = Config::load(path).map_err(|e| {
        eprintln!("keyway: {e}");
        ExitCode::FAILURE
    })?;
    for w in c.warnings() {
        keyway::warn!("{w}");
    }
    Ok(c)
}

fn parse_level(s: &str) -> Result<keyway::log::Level, String> {
    keyway::log::Level::parse(s).ok_or_else(|| "one of error, warn, info, debug".to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(level) = cli.log_level {
        keyway::log::fix_level(level);
    }
    match (cli.command, cli.config) {
        (Some(Cmd::Check { config }), _) => match load(&config) {
            Ok(c) => {
                let topo = Topology::build(c);
                println!(
                    "{}: ok ({} cluster(s), {} endpoint(s))",
                    config.display(),
                    topo.clusters.len(),
                    topo.endpoints.len()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        (Some(Cmd::Import { from }), _) => import(from),
        (
            Some(Cmd::Reshard {
                action,
                instances,
                token_file,
                config,
            }),
            _,
        ) => reshard(action, &instances, token_file.as_deref(), config.as_deref()),
        (Some(Cmd::Latency { dirs, plot }), _) => latency(&dirs, plot.as_deref()),
        (
            Some(Cmd::Top {
                instance,
                token_file,
                interval,
                once,
            }),
            _,
        ) => top(&instance, token_file.as_deref(), interval, once),
        (Some(Cmd::Route { config, keys }), _) => match load(&config) {
            Ok(c) => {
                let topo = Topology::build(c);
                // No slot map: a Redis Cluster's nodes are only known at
                // run time, so its slot says where a key goes.
                let router = Router::new(&topo, &[]);
                for key in keys {
                    let k = key.as_bytes();
                    let Ok(route) = router.route(k, "key") else {
                        println!("{key}\t-\tno route");
                        continue;
                    };
                    let cluster = &topo.clusters[route.cluster].name;
                    let stripped = &k[route.strip..];
                    match router.locate(route.cluster, stripped) {
                        Ok(home) => {
                            let e = &topo.endpoints[home.shard.primary];
                            println!("{key}\t{cluster}\t{}", e.label)
                        }
                        Err(_) => println!("{key}\t{cluster}\tslot {}", key_slot(stripped)),
                    }
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        (None, Some(config)) => {
            let c = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match keyway::runtime::run(c, Some(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(msg) => {
                    keyway::error!("{msg}");
                    ExitCode::FAILURE
                }
            }
        }
        (None, None) => {
            eprintln!(
                "keyway: no configuration given; run `keyway --config config.toml` (see --help)"
            );
            ExitCode::from(2)
        }
    }
}
