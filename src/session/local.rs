//! Commands keyway answers itself: connection handshakes and the few
//! introspection commands clients send on connect.

use super::clients::Named;
use super::gather::Merge;
use super::{Client, CoreContext};
use crate::command::{Exec, KeySpec, Local, COMMANDS};
use crate::config::PasswordDigest;
use crate::resp::errors::ErrorReply;
use crate::resp::parse_int;
use crate::resp::request::Request;
use crate::resp::write::{self, quoted, Protocol};
use crate::stats::{CoreCounter, ErrorKind};

pub fn execute(cmd: Local, ctx: &CoreContext, client: &mut Client, req: Request<'_>) {
    let args = req.args;
    let arg = |i: usize| req.arg(i);
    let argc = args.len();
    match cmd {
        Local::Ping if client.pubsub.is_some() && client.proto == Protocol::Resp2 && argc <= 2 => {
            super::pubsub::ping(client, (argc == 2).then(|| arg(1)))
        }
        Local::Ping => match argc {
            1 => client.reply(|o| write::simple(o, "PONG")),
            2 => client.reply(|o| write::bulk(o, arg(1))),
            _ => client.refuse(ErrorReply::WrongArity("ping")),
        },
        Local::Echo => client.reply(|o| write::bulk(o, arg(1))),
        Local::Quit => {
            if let Some(ps) = client.pubsub.take() {
                ps.close();
            }
            client.reply(|o| write::simple(o, "OK"));
            client.close = true;
        }
        Local::Select => select(ctx, client, arg(1)),
        Local::Auth => {
            if auth(ctx, client, &(1..argc).map(arg).collect::<Vec<_>>()) {
                client.reply(|o| write::simple(o, "OK"));
            }
        }
        Local::Hello => hello(ctx, client, req),
        Local::Client => client_cmd(ctx, client, req),
        Local::HotKeys => super::hot_keys::hotkeys(ctx, client, req),
        Local::Command => command(ctx, client, req),
        // As Redis: back to a new connection's state (RESP2, database 0,
        // no transaction, no name, authenticated only without a password).
        Local::Reset => {
            client.set_proto(Protocol::Resp2);
            client.set_db(0);
            client.reply_mode = super::ReplyMode::On;
            client.tx = None;
            super::transaction::unwatch(client);
            if let Some(ps) = client.pubsub.take() {
                ps.close();
            }
            client.me.entry.set(Named::Name, b"");
            client.authenticated = ctx.topo.config.password.is_none();
            client.reply(|o| write::simple(o, "RESET"));
        }
        // keyway is what its clients see: a primary without replicas.
        Local::Role => client.reply(|o| o.extend_from_slice(b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n")),
    }
}

/// SELECT n: later requests of this client go over connections that
/// selected database n. Redis Clusters have database 0 only, and say so.
fn select(ctx: &CoreContext, client: &mut Client, n: &[u8]) {
    let Some(db) = parse_int(n) else {
        return client.refuse(ErrorReply::NotInteger);
    };
    let topo = &ctx.topo;
    if db != 0 && topo.has_redis_cluster() {
        return client.refuse(ErrorReply::SelectInCluster);
    }
    if db < 0 || db >= topo.config.databases as i64 {
        return client.refuse(ErrorReply::DbOutOfRange);
    }
    client.set_db(db as u16);
    client.reply(|o| write::simple(o, "OK"));
}

/// Checks credentials against `proxy.password` (and `proxy.username`,
/// "default" when unset). Without a proxy password keyway behaves like a
/// Redis whose default user has no password. On success the client is
/// authenticated; on failure the error is already queued.
fn check_credentials(
    ctx: &CoreContext,
    client: &mut Client,
    user: Option<&[u8]>,
    pass: &[u8],
) -> bool {
    let cfg = &ctx.topo.config;
    let want_user = cfg.username.as_deref().unwrap_or("default").as_bytes();
    let Some(password) = cfg.password.as_ref() else {
        return match user {
            None => {
                client.refuse(ErrorReply::AuthWithoutPassword);
                false
            }
            Some(u) if u.eq_ignore_ascii_case(b"default") => true,
            Some(_) => {
                client.refuse_as(ErrorKind::Auth, ErrorReply::WrongPass);
                false
            }
        };
    };
    // Both are always checked, so the time taken does not say which failed.
    let user_ok = PasswordDigest::of(want_user).matches(user.unwrap_or(b"default"));
    let pass_ok = password.matches(pass);
    if user_ok && pass_ok {
        client.authenticated = true;
        true
    } else {
        wrong_credentials(ctx, client);
        false
    }
}

/// A failed AUTH: answered as Redis answers it, counted, and logged once
/// per log window per client address. After `auth_failure_limit` of them
/// the connection is closed once the reply is sent, so a password cannot be
/// guessed at the speed of a pipeline.
fn wrong_credentials(ctx: &CoreContext, client: &mut Client) {
    client.refuse_as(ErrorKind::Auth, ErrorReply::WrongPass);
    ctx.stats.count(CoreCounter::AuthFailures, 1);
    client.auth_failures = client.auth_failures.saturating_add(1);
    // The address without its port: one line per host, not per connection.
    let from = client
        .me
        .entry
        .peer()
        .map_or_else(|| "a client".to_string(), |a| format!("client {}", a.ip()));
    let limit = ctx.topo.config.auth_failure_limit;
    if limit > 0 && client.auth_failures >= limit {
        ctx.stats.count(CoreCounter::AuthClosed, 1);
        client.close = true;
        crate::warn!("{from}: {limit} failed AUTH attempts on one connection (auth_failure_limit): closing it");
    } else {
        crate::warn!("{from}: AUTH failed (wrong username or password)");
    }
}

fn auth(ctx: &CoreContext, client: &mut Client, creds: &[&[u8]]) -> bool {
    match creds {
        [pass] => check_credentials(ctx, client, None, pass),
        [user, pass] => check_credentials(ctx, client, Some(user), pass),
        _ => {
            client.refuse(ErrorReply::Syntax);
            false
        }
    }
}

fn hello(ctx: &CoreContext, client: &mut Client, req: Request<'_>) {
    let args = req.args;
    let arg = |i: usize| req.arg(i);
    let mut proto = client.proto;
    if args.len() >= 2 {
        proto = match parse_int(arg(1)) {
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return client.refuse(ErrorReply::NoProto),
            None => return client.refuse(ErrorReply::ProtoNotInteger),
        };
    }
    let mut i = 2;
    let mut name = None;
    let mut authed_here = false;
    while i < args.len() {
        let opt = arg(i);
        if opt.eq_ignore_ascii_case(b"auth") && i + 2 < args.len() {
            // AUTH inside HELLO: its error, if any, is the HELLO reply.
            if !check_credentials(ctx, client, Some(arg(i + 1)), arg(i + 2)) {
                return;
            }
            authed_here = true;
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"setname") && i + 1 < args.len() {
            if !valid_name(arg(i + 1)) {
                return client.refuse(ErrorReply::BadClientName);
            }
            name = Some(arg(i + 1).to_vec());
            i += 2;
        } else {
            return client.refuse(ErrorReply::HelloOption(&quoted(opt, 128)));
        }
    }
    if !client.authenticated && !authed_here {
        return client.refuse_as(ErrorKind::Auth, ErrorReply::HelloNoAuth);
    }
    if let Some(n) = name {
        client.me.entry.set(Named::Name, &n);
    }
    client.set_proto(proto);
    let id = client.id;
    match ctx.backend_version.fresh() {
        Some(v) => client.reply(|o| super::gather::hello_reply(o, proto, id, &v)),
        None => super::fanout::hello(ctx, client),
    }
}

fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

/// CLIENT: keyway's own clients (the connections to keyway, not keyway's
/// connections to the backends).
fn client_cmd(ctx: &CoreContext, client: &mut Client, req: Request<'_>) {
    let args = req.args;
    let arg = |i: usize| req.arg(i);
    let sub = arg(1);
    let is = |s: &[u8]| sub.eq_ignore_ascii_case(s);
    let arity_ok = |n: usize, client: &mut Client| {
        if args.len() != n {
            client.refuse(ErrorReply::SubcommandArity {
                command: "client",
                sub: &quoted(sub, 32).to_lowercase(),
            });
            false
        } else {
            true
        }
    };
    let ok = |client: &mut Client| client.reply(|o| write::simple(o, "OK"));
    let entry = client.me.entry.clone();
    if is(b"setname") {
        if arity_ok(3, client) {
            let name = arg(2);
            if !valid_name(name) {
                return client.refuse(ErrorReply::BadClientName);
            }
            entry.set(Named::Name, name);
            ok(client)
        }
    } else if is(b"getname") {
        if arity_ok(2, client) {
            let proto = client.proto;
            match entry.get(Named::Name) {
                Some(n) => client.reply(|o| write::bulk(o, &n)),
                None => client.reply(|o| write::null(o, proto)),
            }
        }
    } else if is(b"setinfo") {
        if arity_ok(4, client) {
            client_setinfo(client, arg(2), arg(3));
        }
    } else if is(b"id") {
        if arity_ok(2, client) {
            let id = client.id as i64;
            client.reply(|o| write::integer(o, id));
        }
    } else if is(b"info") {
        if arity_ok(2, client) {
            let mut line = String::new();
            ctx.clients.line(&entry, &mut line);
            line.push('\n');
            let proto = client.proto;
            client.reply(|o| write::verbatim(o, &line, proto));
        }
    } else if is(b"list") {
        let opts: Vec<&[u8]> = (2..args.len()).map(arg).collect();
        match super::clients::parse_filter(&opts, false, client.id) {
            Ok(filter) => list_clients(ctx, client, filter),
            Err(e) => client.refuse(e.reply()),
        }
    } else if is(b"kill") {
        kill_clients(ctx, client, req)
    } else if is(b"reply") {
        if arity_ok(3, client) {
            client_reply(client, arg(2));
        }
    } else if is(b"no-evict") || is(b"no-touch") || is(b"tracking") {
        if args.len() < 3 {
            return client.refuse(ErrorReply::SubcommandArity {
                command: "client",
                sub: &quoted(sub, 32).to_lowercase(),
            });
        }
        client_option(client, sub, arg(2));
    } else if is(b"getredir") {
        if arity_ok(2, client) {
            client.reply(|o| write::integer(o, -1));
        }
    } else if is(b"trackinginfo") {
        if arity_ok(2, client) {
            let proto = client.proto;
            // Tracking is never on (see `client_option`).
            client.reply(|o| {
                write::map_header(o, 3, proto);
                write::bulk(o, b"flags");
                write::set_header(o, 1, proto);
                write::bulk(o, b"off");
                write::bulk(o, b"redirect");
                write::integer(o, -1);
                write::bulk(o, b"prefixes");
                write::array_header(o, 0);
            });
        }
    } else {
        client.refuse(ErrorReply::UnsupportedSubcommand {
            command: "CLIENT",
            sub: &quoted(sub, 128).to_uppercase(),
        });
    }
}

/// CLIENT SETINFO LIB-NAME|LIB-VER value.
fn client_setinfo(client: &mut Client, attr: &[u8], value: &[u8]) {
    let field = if attr.eq_ignore_ascii_case(b"lib-name") {
        Named::LibName
    } else if attr.eq_ignore_ascii_case(b"lib-ver") {
        Named::LibVer
    } else {
        return client.refuse(ErrorReply::UnrecognizedOption(&quoted(attr, 128)));
    };
    if value.iter().any(|c| !(b'!'..=b'~').contains(c)) {
        return client.refuse(ErrorReply::BadClientInfo(&quoted(attr, 32)));
    }
    client.me.entry.set(field, value);
    client.reply(|o| write::simple(o, "OK"));
}

/// CLIENT REPLY ON|OFF|SKIP: OFF and SKIP are not answered themselves.
fn client_reply(client: &mut Client, mode: &[u8]) {
    let m = |s: &[u8]| mode.eq_ignore_ascii_case(s);
    let from = client.replies.borrow().len();
    client.reply_mode_set = true;
    client.reply_mode = if m(b"on") {
        super::ReplyMode::On
    } else if m(b"off") {
        super::ReplyMode::Off
    } else if m(b"skip") {
        super::ReplyMode::Skip
    } else {
        return client.refuse(ErrorReply::Syntax);
    };
    client.reply(|o| write::simple(o, "OK"));
    if client.reply_mode != super::ReplyMode::On {
        client.replies.borrow_mut().mute_from(from);
    }
}

/// CLIENT NO-EVICT|NO-TOUCH|TRACKING ON|OFF. keyway never evicts clients
/// (NO-EVICT is what it does anyway); NO-TOUCH and TRACKING would need a
/// backend connection of the client's own, so only their OFF is accepted.
fn client_option(client: &mut Client, option: &[u8], value: &[u8]) {
    let on = value.eq_ignore_ascii_case(b"on");
    if value.eq_ignore_ascii_case(b"off") || (option.eq_ignore_ascii_case(b"no-evict") && on) {
        client.reply(|o| write::simple(o, "OK"))
    } else if on {
        client.refuse(ErrorReply::ClientOptionOn(
            &quoted(option, 32).to_uppercase(),
        ))
    } else {
        client.refuse(ErrorReply::Syntax)
    }
}

/// CLIENT LIST: this core's clients at once, the other cores' as their
/// control loops answer (within a second; a core that does not answer is
/// left out).
fn list_clients(ctx: &CoreContext, client: &mut Client, filter: super::clients::Filter) {
    use super::clients::Ask;
    let own = ctx.clients.list(&filter);
    let proto = client.proto;
    if ctx.clients.cores() == 1 {
        return client.reply(|o| write::verbatim(o, &own, proto));
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let asked = ctx
        .clients
        .ask_others(|| Ask::List(filter.clone(), tx.clone()));
    let encode = |o: &mut Vec<u8>, text: String| write::bulk(o, text.as_bytes());
    let mut part = Vec::new();
    encode(&mut part, own);
    from_other_cores(
        client,
        Merge::ClientList,
        part,
        asked,
        rx,
        encode,
        b"$0\r\n\r\n",
    );
}

/// CLIENT KILL ip:port (old form: +OK or an error) or with filters (new
/// form: how many were closed). The client itself, when it matches, is
/// closed after its reply.
fn kill_clients(ctx: &CoreContext, client: &mut Client, req: Request<'_>) {
    let args = req.args;
    use super::clients::{parse_filter, Ask, Filter};
    let arg = |i: usize| req.arg(i);
    if args.len() < 3 {
        return client.refuse(ErrorReply::WrongArity("client|kill"));
    }
    let old_form = args.len() == 3;
    let filter = if old_form {
        Filter {
            addr: Some(String::from_utf8_lossy(arg(2)).into_owned()),
            ..Filter::default()
        }
    } else {
        let opts: Vec<&[u8]> = (2..args.len()).map(arg).collect();
        match parse_filter(&opts, true, client.id) {
            Ok(f) => f,
            Err(e) => return client.refuse(e.reply()),
        }
    };
    // This session is closed by itself, after its reply; the registry
    // closes the others.
    let me = filter.skip != Some(client.id) && ctx.clients.matches(&client.me.entry, &filter);
    let others = Filter {
        skip: Some(client.id),
        ..filter
    };
    let killed = ctx.clients.kill(&others) + me as usize;
    if me {
        client.close = true;
    }
    let merge = Merge::ClientKill { old_form };
    let (tx, rx) = crossbeam_channel::unbounded();
    let asked = if ctx.clients.cores() > 1 {
        ctx.clients
            .ask_others(|| Ask::Kill(others.clone(), tx.clone()))
    } else {
        0
    };
    let mut own = Vec::new();
    write::integer(&mut own, killed as i64);
    let encode = |o: &mut Vec<u8>, n: usize| write::integer(o, n as i64);
    from_other_cores(client, merge, own, asked, rx, encode, b":0\r\n");
}

/// A reply made of this core's part (`own`, encoded) and `asked` other
/// cores' answers arriving on `rx`, merged with `merge`.
fn from_other_cores<T: 'static>(
    client: &mut Client,
    merge: Merge,
    own: Vec<u8>,
    asked: usize,
    rx: crossbeam_channel::Receiver<T>,
    encode: impl Fn(&mut Vec<u8>, T) + 'static,
    missing: &'static [u8],
) {
    use crate::upstream::waiter::Waiter;
    let g = super::gather::Gather::new(merge, client.proto, 1 + asked);
    let slot = client.replies.borrow_mut().push_gather(g);
    Waiter::new(&client.replies, slot, 0).complete(&own);
    if asked == 0 {
        return;
    }
    let replies = client.replies.clone();
    crate::net::spawn(async move {
        let mut part = 1;
        let got = super::clients::answers(rx, asked, |answer| {
            let mut o = Vec::new();
            encode(&mut o, answer);
            Waiter::new(&replies, slot, part).complete(&o);
            part += 1;
        })
        .await;
        // A core that did not answer in time (it is stuck): its part is
        // `missing`, so the client is answered.
        for p in got + 1..=asked {
            Waiter::new(&replies, slot, p).complete(missing);
        }
    })
    .detach();
}

/// COMMAND and its subcommands: the backends' own table, filtered; keyway's
/// table when no route leads to a backend.
fn command(ctx: &CoreContext, client: &mut Client, req: Request<'_>) {
    let (frame, args) = (req.frame, req.args);
    use super::gather::{Merge, Table};
    let arg = |i: usize| req.arg(i);
    let sub = (args.len() > 1).then(|| arg(1));
    let is = |s: &[u8]| sub.is_some_and(|sub| sub.eq_ignore_ascii_case(s));
    let merge = if sub.is_none() {
        Merge::CommandTable(Table::Entries)
    } else if is(b"info") {
        Merge::CommandTable(Table::EntriesAsked)
    } else if is(b"list") {
        Merge::CommandTable(Table::Names)
    } else if is(b"count") {
        Merge::CommandTable(Table::Count)
    } else if is(b"docs") {
        Merge::CommandDocs
    } else if is(b"getkeys") || is(b"getkeysandflags") || is(b"help") {
        Merge::First
    } else {
        return client.refuse(ErrorReply::UnknownSubcommand {
            sub: &quoted(sub.unwrap_or_default(), 128),
            command: "COMMAND",
        });
    };
    if super::fanout::command_table(ctx, client, frame, merge) {
        return;
    }
    own_command_table(client, req)
}

/// COMMAND from keyway's own table.
fn own_command_table(client: &mut Client, req: Request<'_>) {
    let args = req.args;
    let arg = |i: usize| req.arg(i);
    let proto = client.proto;
    let served = || COMMANDS.iter().filter(|c| c.exec != Exec::Unsupported);
    if args.len() == 1 {
        return client.reply(|o| {
            write::array_header(o, served().count());
            for c in served() {
                command_info(o, c, proto);
            }
        });
    }
    let sub = arg(1);
    if sub.eq_ignore_ascii_case(b"count") {
        let n = served().count();
        client.reply(|o| write::integer(o, n as i64));
    } else if sub.eq_ignore_ascii_case(b"info") {
        let names: Vec<&[u8]> = (2..args.len()).map(arg).collect();
        client.reply(|o| {
            write::array_header(o, names.len());
            for n in names {
                match crate::command::lookup(n) {
                    Some(c) if c.exec != Exec::Unsupported => command_info(o, c, proto),
                    _ => write::null_array(o, proto),
                }
            }
        });
    } else if sub.eq_ignore_ascii_case(b"list") {
        client.reply(|o| {
            write::array_header(o, served().count());
            for c in served() {
                write::bulk(o, c.name.as_bytes());
            }
        });
    } else if sub.eq_ignore_ascii_case(b"docs") {
        client.reply(|o| write::map_header(o, 0, proto));
    } else {
        client.refuse(ErrorReply::CommandNeedsBackend(
            &quoted(sub, 32).to_uppercase(),
        ));
    }
}

/// One `COMMAND INFO` entry: name, arity, flags, first, last, step, and
/// the (empty) ACL categories, tips, key specs and subcommands.
fn command_info(o: &mut Vec<u8>, c: &crate::command::CommandSpec, proto: Protocol) {
    write::array_header(o, 10);
    write::bulk(o, c.name.as_bytes());
    write::integer(o, c.arity as i64);
    write::set_header(o, 1, proto);
    write::simple(o, if c.write { "write" } else { "readonly" });
    let (first, last, step) = match c.keys {
        KeySpec::None | KeySpec::NumKeys { .. } | KeySpec::StoreNumKeys | KeySpec::Streams => {
            (0, 0, 0)
        }
        KeySpec::Sort | KeySpec::GeoRadius { .. } => (1, 1, 1),
        KeySpec::Range { first, last, step } => (first as i64, last as i64, step as i64),
    };
    write::integer(o, first);
    write::integer(o, last);
    write::integer(o, step);
    for _ in 0..4 {
        write::array_header(o, 0);
    }
}
