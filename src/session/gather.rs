//! One client request answered by several backends at once (INFO, DBSIZE,
//! KEYS, SCAN, FLUSHALL, SCRIPT ...): each backend's reply is a part, the
//! parts arrive in any order, and `merge` writes the one reply the client
//! gets once all are in.

use super::info::{BackendVersion, InfoParts, REDIS_COMPAT_VERSION};
use crate::resp::errors::ErrorReply;
use crate::resp::reply;
use crate::resp::write::{self, Protocol};
use std::rc::Rc;

/// How the parts become the client's reply.
#[derive(Debug)]
pub enum Merge {
    /// INFO: keyway's own sections, the lowest `redis_version` among the
    /// backends that answered, and their keyspaces summed.
    Info(Box<InfoParts>),
    /// HELLO: its reply, with the lowest `redis_version` among the
    /// backends' `INFO server`.
    Hello(Box<HelloParts>),
    /// DBSIZE: the sum.
    SumInt,
    /// FLUSHALL, FLUSHDB, SCRIPT FLUSH: `+OK` once every backend said so.
    AllOk,
    /// SCRIPT LOAD: every backend answers the same (the script's SHA1).
    Same,
    /// KEYS: every backend's array, concatenated, up to `cap` elements.
    Concat { cap: usize },
    /// SCRIPT EXISTS: a script exists only where every backend has it.
    AndInts,
    /// PUBSUB NUMSUB: `[name, n, ...]` from each, the counts summed.
    SumPairs,
    /// COMMAND DOCS from one backend, without what keyway does not serve.
    CommandDocs,
    /// COMMAND, COMMAND INFO, COMMAND LIST or COMMAND COUNT (asked as
    /// COMMAND LIST) from one backend, without what keyway does not serve.
    CommandTable(Table),
    /// SLOWLOG GET: every backend's entries, newest first, at most
    /// `count`; each entry's client name is replaced by its backend's
    /// `host:port` (the client a backend saw is keyway).
    Slowlog { count: usize, backends: Vec<String> },
    /// LATENCY output of every backend, each part named by its backend.
    Latency {
        shape: Latency,
        backends: Vec<String>,
    },
    /// WAIT: parts in pairs per backend (the PUBLISH that gave the waiting
    /// connection the client's replication offset, then WAIT's count); the
    /// fewest replicas any backend reached.
    Wait,
    /// CLIENT LIST: every core's lines, one text.
    ClientList,
    /// CLIENT KILL: every core's count; the old form (`CLIENT KILL
    /// ip:port`) answers +OK or that no such client exists.
    ClientKill { old_form: bool },
    /// One part, passed on as it came (TIME, LASTSAVE).
    First,
    /// CONFIG GET from one backend, its passwords (keyway's to the
    /// backends) redacted.
    ConfigGet,
    /// RANDOMKEY: the first key found, looking from part `start` on.
    AnyNonNull { start: usize },
    /// SCAN on backend `backend` of `backends`: the cursor is rewritten so
    /// it names the backend too (see `scan_cursor`).
    Scan { backend: usize, backends: usize },
}

/// Which COMMAND reply a `Merge::CommandTable` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// COMMAND: entries; those keyway does not serve are left out.
    Entries,
    /// COMMAND INFO name ...: entries in the order asked; those keyway does
    /// not serve become nulls, as unknown names are.
    EntriesAsked,
    /// COMMAND LIST: names.
    Names,
    /// COMMAND COUNT: how many names COMMAND LIST would give.
    Count,
}

/// How the parts of a LATENCY subcommand merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latency {
    /// LATEST: `[event, time, latest, max]` entries; events become
    /// `host:port/event`.
    Latest,
    /// HISTORY event: `[time, latency]` samples of all backends, by time.
    History,
    /// HISTOGRAM: a map per command; commands become `host:port/command`.
    Histogram,
    /// DOCTOR, GRAPH: each backend's text under a line naming it.
    Text,
}

/// Whether keyway serves the command named by a string reply.
fn served(name: &[u8]) -> bool {
    reply::string(name)
        .and_then(crate::command::lookup)
        .is_some_and(|c| c.exec != crate::command::Exec::Unsupported)
}

/// What HELLO's reply needs beside the backends' version.
#[derive(Debug)]
pub struct HelloParts {
    pub client_id: u64,
    pub seen: Rc<BackendVersion>,
}

/// HELLO's reply map, reporting `version`.
pub fn hello_reply(out: &mut Vec<u8>, proto: Protocol, client_id: u64, version: &str) {
    write::map_header(out, 8, proto);
    write::bulk(out, b"server");
    write::bulk(out, b"redis");
    write::bulk(out, b"version");
    write::bulk(out, version.as_bytes());
    write::bulk(out, b"proto");
    write::integer(out, if proto == Protocol::Resp3 { 3 } else { 2 });
    write::bulk(out, b"id");
    write::integer(out, client_id as i64);
    write::bulk(out, b"mode");
    write::bulk(out, b"standalone");
    write::bulk(out, b"role");
    write::bulk(out, b"master");
    write::bulk(out, b"modules");
    write::array_header(out, 0);
    write::bulk(out, b"proxy");
    write::bulk(
        out,
        concat!("keyway/", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
}

#[derive(Debug)]
pub struct Gather {
    pub merge: Merge,
    pub proto: Protocol,
    /// Per part, its reply as a range of the session's reply arena.
    pub parts: Vec<Option<(usize, usize)>>,
    pub pending: usize,
}

impl Gather {
    pub fn new(merge: Merge, proto: Protocol, parts: usize) -> Gather {
        Gather {
            merge,
            proto,
            parts: vec![None; parts],
            pending: parts,
        }
    }
}

/// The client cursor of a cross-backend SCAN: backend `backend`'s cursor
/// `cursor`, as one integer (clients parse cursors as integers). Cursor 0
/// of backend 0 is 0, as Redis's first cursor; None past 2^64.
pub fn scan_cursor(backend: usize, backends: usize, cursor: u64) -> Option<u64> {
    cursor
        .checked_mul(backends as u64)?
        .checked_add(backend as u64)
}

/// The backend and its cursor that a client SCAN cursor names.
pub fn split_cursor(cursor: u64, backends: usize) -> (usize, u64) {
    let n = backends.max(1) as u64;
    ((cursor % n) as usize, cursor / n)
}

/// Writes the merged reply of `g`, whose parts are ranges of `arena`.
pub fn merge(g: &Gather, arena: &[u8], out: &mut Vec<u8>) {
    let parts: Vec<&[u8]> = g
        .parts
        .iter()
        .map(|r| r.map_or(&b""[..], |(a, b)| &arena[a..b]))
        .collect();
    match &g.merge {
        Merge::Info(info) => return merge_info(info, parts.iter().copied(), g.proto, out),
        // A backend that does not answer never fails a handshake.
        Merge::Hello(h) => return merge_hello(h, &parts, g.proto, out),
        _ => {}
    }
    // Elsewhere the first error any backend met is the reply: a partial
    // answer would look complete.
    if let Some(e) = parts.iter().find(|p| p.is_empty() || reply::is_error(p)) {
        if e.is_empty() {
            ErrorReply::PartReplyMissing.encode(out);
        } else {
            out.extend_from_slice(e);
        }
        return;
    }
    match &g.merge {
        Merge::Info(_) | Merge::Hello(_) => {}
        Merge::SumInt => sum_integers(&parts, out),
        Merge::AllOk => all_ok(&parts, out),
        Merge::Same => all_the_same(&parts, out),
        Merge::First => out.extend_from_slice(parts[0]),
        Merge::AnyNonNull { start } => any_non_null(&parts, *start, g.proto, out),
        Merge::Concat { cap } => concat(&parts, *cap, out),
        Merge::AndInts => and_integers(&parts, out),
        Merge::SumPairs => sum_pairs(&parts, out),
        Merge::Wait => least_acknowledged(&parts, out),
        Merge::CommandDocs => command_docs(parts[0], g.proto, out),
        Merge::CommandTable(table) => command_table(parts[0], *table, g.proto, out),
        Merge::Slowlog { count, backends } => slowlog(&parts, *count, backends, out),
        Merge::Latency { shape, backends } => {
            merge_latency(*shape, backends, parts.iter().copied(), g.proto, out)
        }
        Merge::ClientList => client_list(&parts, g.proto, out),
        Merge::ClientKill { old_form } => client_kill(&parts, *old_form, out),
        Merge::ConfigGet => redact_config(parts[0], g.proto, out),
        Merge::Scan { backend, backends } => scan(parts[0], *backend, *backends, out),
    }
}

/// HELLO: keyway's own reply, with the lowest version the backends run.
fn merge_hello(h: &HelloParts, parts: &[&[u8]], proto: Protocol, out: &mut Vec<u8>) {
    let version = lowest_version(
        parts
            .iter()
            .filter_map(|p| reply::string(p).and_then(|t| std::str::from_utf8(t).ok())),
    );
    if let Some(v) = version {
        h.seen.saw(v);
    }
    let v = version.unwrap_or(REDIS_COMPAT_VERSION);
    hello_reply(out, proto, h.client_id, v)
}

// Numbers: DBSIZE and the like, SCRIPT EXISTS, PUBSUB NUMSUB, WAIT.

fn sum_integers(parts: &[&[u8]], out: &mut Vec<u8>) {
    let mut sum: i64 = 0;
    for p in parts {
        match reply::integer(p) {
            Some(v) => sum = sum.saturating_add(v),
            None => return unexpected(out, "an integer"),
        }
    }
    write::integer(out, sum);
}

fn and_integers(parts: &[&[u8]], out: &mut Vec<u8>) {
    let mut scratch = Vec::new();
    let mut all: Option<Vec<bool>> = None;
    for p in parts {
        scratch.clear();
        if reply::aggregate(p, &mut scratch).is_none() {
            return unexpected(out, "an array");
        }
        let here: Vec<bool> = scratch
            .iter()
            .map(|&(a, b)| reply::integer(&p[a..b]) == Some(1))
            .collect();
        all = Some(match all {
            None => here,
            Some(prev) if prev.len() == here.len() => {
                prev.iter().zip(&here).map(|(x, y)| *x && *y).collect()
            }
            Some(_) => return unexpected(out, "arrays of one length"),
        });
    }
    let all = all.unwrap_or_default();
    write::array_header(out, all.len());
    for v in all {
        write::integer(out, v as i64);
    }
}

fn sum_pairs(parts: &[&[u8]], out: &mut Vec<u8>) {
    let mut scratch = Vec::new();
    let mut sums: Vec<(&[u8], i64)> = Vec::new();
    for p in parts {
        scratch.clear();
        if reply::aggregate(p, &mut scratch).is_none() || !scratch.len().is_multiple_of(2) {
            return unexpected(out, "name and count pairs");
        }
        for (i, pair) in scratch.chunks(2).enumerate() {
            let name = &p[pair[0].0..pair[0].1];
            let n = reply::integer(&p[pair[1].0..pair[1].1]).unwrap_or(0);
            match sums.get_mut(i) {
                Some((_, sum)) => *sum += n,
                None => sums.push((name, n)),
            }
        }
    }
    write::array_header(out, 2 * sums.len());
    for (name, n) in sums {
        out.extend_from_slice(name);
        write::integer(out, n);
    }
}

/// WAIT: the replicas every primary written to has (each backend's reply
/// follows its PUBLISH's).
fn least_acknowledged(parts: &[&[u8]], out: &mut Vec<u8>) {
    let counts = parts.iter().skip(1).step_by(2).map(|p| reply::integer(p));
    match counts.collect::<Option<Vec<i64>>>() {
        Some(c) => write::integer(out, c.into_iter().min().unwrap_or(0)),
        None => unexpected(out, "an integer"),
    }
}

// Agreement: FLUSHALL, SCRIPT LOAD, RANDOMKEY.

fn all_ok(parts: &[&[u8]], out: &mut Vec<u8>) {
    match parts.iter().find(|p| **p != write::OK) {
        Some(other) => out.extend_from_slice(other),
        None => write::simple(out, "OK"),
    }
}

fn all_the_same(parts: &[&[u8]], out: &mut Vec<u8>) {
    let first = parts[0];
    match parts.iter().find(|p| **p != first) {
        Some(_) => ErrorReply::BackendsDisagree.encode(out),
        None => out.extend_from_slice(first),
    }
}

fn any_non_null(parts: &[&[u8]], start: usize, proto: Protocol, out: &mut Vec<u8>) {
    let n = parts.len();
    let found = (0..n)
        .map(|i| parts[(start + i) % n])
        .find(|p| !matches!(*p, b"$-1\r\n" | b"_\r\n" | b"*-1\r\n"));
    match found {
        Some(p) => out.extend_from_slice(p),
        None => write::null(out, proto),
    }
}

// Lists: KEYS, PUBSUB CHANNELS, CLIENT LIST and KILL.

fn concat(parts: &[&[u8]], cap: usize, out: &mut Vec<u8>) {
    let mut scratch = Vec::new();
    let mut total = 0;
    for p in parts {
        scratch.clear();
        if reply::aggregate(p, &mut scratch).is_none() {
            return unexpected(out, "an array");
        }
        total += scratch.len();
    }
    if total > cap {
        return ErrorReply::KeysOverLimit { total, limit: cap }.encode(out);
    }
    write::array_header(out, total);
    for p in parts {
        scratch.clear();
        let _ = reply::aggregate(p, &mut scratch);
        for &(a, b) in &scratch {
            out.extend_from_slice(&p[a..b]);
        }
    }
}

fn client_list(parts: &[&[u8]], proto: Protocol, out: &mut Vec<u8>) {
    let text: Vec<u8> = parts
        .iter()
        .filter_map(|p| reply::string(p))
        .flatten()
        .copied()
        .collect();
    write::verbatim(out, &String::from_utf8_lossy(&text), proto);
}

fn client_kill(parts: &[&[u8]], old_form: bool, out: &mut Vec<u8>) {
    let killed: i64 = parts.iter().filter_map(|p| reply::integer(p)).sum();
    match (old_form, killed) {
        (false, n) => write::integer(out, n),
        (true, 0) => ErrorReply::NoSuchClient.encode(out),
        (true, _) => write::simple(out, "OK"),
    }
}

// COMMAND: what the first backend says, less what keyway does not serve.

fn command_docs(p: &[u8], proto: Protocol, out: &mut Vec<u8>) {
    let mut scratch = Vec::new();
    if reply::map_entries(p, &mut scratch).is_none() || !scratch.len().is_multiple_of(2) {
        return unexpected(out, "a map of command docs");
    }
    let kept: Vec<_> = scratch
        .chunks(2)
        .filter(|kv| served(&p[kv[0].0..kv[0].1]))
        .collect();
    write::map_header(out, kept.len(), proto);
    for kv in kept {
        out.extend_from_slice(&p[kv[0].0..kv[1].1]);
    }
}

fn command_table(p: &[u8], table: Table, proto: Protocol, out: &mut Vec<u8>) {
    let mut scratch = Vec::new();
    if reply::aggregate(p, &mut scratch).is_none() {
        return unexpected(out, "an array of commands");
    }
    let mut fields = Vec::new();
    // An entry's name is its first element; a null (an unknown name
    // in COMMAND INFO) has none.
    let mut entry_served = |e: &[u8]| {
        fields.clear();
        reply::aggregate(e, &mut fields).is_some()
            && fields.first().is_some_and(|&(a, b)| served(&e[a..b]))
    };
    let entries = scratch.iter().map(|&(a, b)| &p[a..b]);
    match table {
        Table::Entries => {
            let kept: Vec<&[u8]> = entries.filter(|e| entry_served(e)).collect();
            write::array_header(out, kept.len());
            kept.iter().for_each(|e| out.extend_from_slice(e));
        }
        Table::EntriesAsked => {
            write::array_header(out, scratch.len());
            for e in entries {
                if entry_served(e) {
                    out.extend_from_slice(e);
                } else {
                    write::null_array(out, proto);
                }
            }
        }
        Table::Names => {
            let kept: Vec<&[u8]> = entries.filter(|n| served(n)).collect();
            write::array_header(out, kept.len());
            kept.iter().for_each(|n| out.extend_from_slice(n));
        }
        Table::Count => write::integer(out, entries.filter(|n| served(n)).count() as i64),
    }
}

// Diagnostics: SLOWLOG GET across backends, each entry naming its backend.

fn slowlog(parts: &[&[u8]], count: usize, backends: &[String], out: &mut Vec<u8>) {
    let mut scratch = Vec::new();
    let mut entries = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        scratch.clear();
        if reply::aggregate(p, &mut scratch).is_none() {
            return unexpected(out, "an array of slowlog entries");
        }
        for &(a, b) in &scratch {
            let mut fields = Vec::new();
            let e = &p[a..b];
            if reply::aggregate(e, &mut fields).is_none() || fields.len() < 4 {
                return unexpected(out, "slowlog entries");
            }
            let time = reply::integer(&e[fields[1].0..fields[1].1]).unwrap_or(0);
            entries.push((time, i, e, fields));
        }
    }
    // Newest first, as each backend gives them.
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    entries.truncate(count);
    write::array_header(out, entries.len());
    for (_, i, e, f) in entries {
        write::array_header(out, 6);
        out.extend_from_slice(&e[f[0].0..f[3].1]);
        match f.get(4) {
            Some(&(a, b)) => out.extend_from_slice(&e[a..b]),
            None => write::bulk(out, b""),
        }
        write::bulk(out, backends[i].as_bytes());
    }
}

/// SCAN over every backend in turn: one backend's reply, its cursor made
/// the client's.
fn scan(p: &[u8], backend: usize, backends: usize, out: &mut Vec<u8>) {
    let mut scratch = Vec::new();
    if reply::elements(p, 2, &mut scratch).is_none() {
        return unexpected(out, "a SCAN reply");
    }
    let (ca, cb) = scratch[0];
    let cursor = reply::string(&p[ca..cb]).and_then(parse_u64);
    let Some(cursor) = cursor else {
        return unexpected(out, "a SCAN cursor");
    };
    let next = if cursor != 0 {
        scan_cursor(backend, backends, cursor)
    } else if backend + 1 < backends {
        // This backend is done: the next one starts.
        Some(backend as u64 + 1)
    } else {
        Some(0)
    };
    let Some(next) = next else {
        return ErrorReply::ScanCursorTooLarge.encode(out);
    };
    write::array_header(out, 2);
    let mut digits = Vec::with_capacity(20);
    write::push_decimal(&mut digits, next);
    write::bulk(out, &digits);
    let (ka, kb) = scratch[1];
    out.extend_from_slice(&p[ka..kb]);
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn unexpected(out: &mut Vec<u8>, what: &str) {
    ErrorReply::UnexpectedReply(what).encode(out);
}

fn merge_latency<'a>(
    shape: Latency,
    backends: &[String],
    parts: impl Iterator<Item = &'a [u8]>,
    proto: Protocol,
    out: &mut Vec<u8>,
) {
    let mut body = Vec::new();
    let mut count = 0;
    let mut text = String::new();
    let mut samples: Vec<(i64, &[u8])> = Vec::new();
    let mut scratch = Vec::new();
    let mut fields = Vec::new();
    for (p, backend) in parts.zip(backends) {
        scratch.clear();
        let shape_ok = match shape {
            Latency::Text => reply::string(p).is_some(),
            Latency::Histogram => reply::map_entries(p, &mut scratch).is_some(),
            Latency::Latest | Latency::History => reply::aggregate(p, &mut scratch).is_some(),
        };
        if !shape_ok {
            return unexpected(out, "a LATENCY reply");
        }
        match shape {
            Latency::Text => {
                let t = reply::string(p).unwrap_or_default();
                text.push_str(&format!("backend {backend}:\n"));
                text.push_str(&String::from_utf8_lossy(t));
                if !text.ends_with('\n') {
                    text.push('\n');
                }
            }
            Latency::Histogram => {
                for kv in scratch.chunks(2) {
                    let [(ka, kb), (va, vb)] = [kv[0], kv[1]];
                    let name = reply::string(&p[ka..kb]).unwrap_or_default();
                    let mut named = format!("{backend}/").into_bytes();
                    named.extend_from_slice(name);
                    write::bulk(&mut body, &named);
                    body.extend_from_slice(&p[va..vb]);
                    count += 1;
                }
            }
            Latency::Latest => {
                for &(a, b) in &scratch {
                    let e = &p[a..b];
                    fields.clear();
                    if reply::aggregate(e, &mut fields).is_none() || fields.is_empty() {
                        return unexpected(out, "LATENCY LATEST entries");
                    }
                    let event = reply::string(&e[fields[0].0..fields[0].1]).unwrap_or_default();
                    let mut named = format!("{backend}/").into_bytes();
                    named.extend_from_slice(event);
                    write::array_header(&mut body, fields.len());
                    write::bulk(&mut body, &named);
                    if let (Some(first), Some(last)) = (fields.get(1), fields.last()) {
                        body.extend_from_slice(&e[first.0..last.1]);
                    }
                    count += 1;
                }
            }
            Latency::History => {
                for &(a, b) in &scratch {
                    let e = &p[a..b];
                    fields.clear();
                    let time = reply::aggregate(e, &mut fields)
                        .and_then(|_| fields.first())
                        .and_then(|&(ta, tb)| reply::integer(&e[ta..tb]));
                    samples.push((time.unwrap_or(0), e));
                }
            }
        }
    }
    match shape {
        Latency::Text => write::verbatim(out, &text, proto),
        Latency::Histogram => {
            write::map_header(out, count, proto);
            out.extend_from_slice(&body);
        }
        Latency::Latest => {
            write::array_header(out, count);
            out.extend_from_slice(&body);
        }
        Latency::History => {
            samples.sort_by_key(|s| s.0);
            write::array_header(out, samples.len());
            samples.iter().for_each(|s| out.extend_from_slice(s.1));
        }
    }
}

/// `major.minor.patch` as numbers, for finding the lowest version.
fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|n| n.parse().unwrap_or(0)).collect()
}

/// The lowest `redis_version` in INFO texts.
fn lowest_version<'a>(texts: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    texts
        .flat_map(|t| t.lines().filter_map(|l| l.strip_prefix("redis_version:")))
        .min_by(|a, b| version_key(a).cmp(&version_key(b)))
}

fn merge_info<'a>(
    info: &InfoParts,
    parts: impl Iterator<Item = &'a [u8]>,
    proto: Protocol,
    out: &mut Vec<u8>,
) {
    // Per database: keys, expires, and avg_ttl weighted by expires.
    let mut dbs: Vec<(u64, u64, u64, u128)> = Vec::new();
    let mut texts = Vec::new();
    let mut failed = 0;
    for p in parts {
        match reply::string(p).and_then(|t| std::str::from_utf8(t).ok()) {
            Some(text) => texts.push(text),
            None => failed += 1,
        }
    }
    let answered = texts.len();
    let version = lowest_version(texts.iter().copied());
    if let Some(v) = version {
        info.seen.saw(v);
    }
    for text in texts {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("db") {
                let Some((n, fields)) = rest.split_once(':') else {
                    continue;
                };
                let Ok(n) = n.parse::<u64>() else { continue };
                let field = |name: &str| {
                    fields
                        .split(',')
                        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                let (keys, expires, ttl) = (field("keys"), field("expires"), field("avg_ttl"));
                match dbs.iter_mut().find(|d| d.0 == n) {
                    Some(d) => {
                        d.1 += keys;
                        d.2 += expires;
                        d.3 += ttl as u128 * expires as u128;
                    }
                    None => dbs.push((n, keys, expires, ttl as u128 * expires as u128)),
                }
            }
        }
    }
    let mut text = String::new();
    if let Some(server) = &info.server {
        text.push_str("# Server\r\nredis_version:");
        text.push_str(version.unwrap_or(REDIS_COMPAT_VERSION));
        text.push_str("\r\n");
        text.push_str(server);
        text.push_str(&format!(
            "keyway_backends_answered:{answered}\r\nkeyway_backends_failed:{failed}\r\n\r\n"
        ));
    }
    text.push_str(&info.rest);
    if info.keyspace {
        text.push_str("# Keyspace\r\n");
        dbs.sort_unstable();
        for (n, keys, expires, weighted) in dbs {
            let avg = if expires > 0 {
                weighted / expires as u128
            } else {
                0
            };
            text.push_str(&format!(
                "db{n}:keys={keys},expires={expires},avg_ttl={avg}\r\n"
            ));
        }
        text.push_str("\r\n");
    }
    // Redis ends INFO without the last blank line.
    while text.ends_with("\r\n\r\n") {
        text.truncate(text.len() - 2);
    }
    write::verbatim(out, &text, proto);
}

/// Parameters whose values are credentials: CONFIG GET through keyway
/// would hand a client the password keyway uses on the backends.
const SECRET_PARAMETERS: [&[u8]; 4] = [
    b"requirepass",
    b"masterauth",
    b"tls-key-file-pass",
    b"tls-client-key-file-pass",
];

/// A CONFIG GET reply with the values of `SECRET_PARAMETERS` replaced.
fn redact_config(reply: &[u8], proto: Protocol, out: &mut Vec<u8>) {
    let mut spans = Vec::new();
    if reply::map_entries(reply, &mut spans).is_none() || spans.len() % 2 != 0 {
        // An error, or nothing like a CONFIG GET reply: as it came.
        return out.extend_from_slice(reply);
    }
    write::map_header(out, spans.len() / 2, proto);
    for pair in spans.chunks(2) {
        let (name, value) = (&reply[pair[0].0..pair[0].1], &reply[pair[1].0..pair[1].1]);
        out.extend_from_slice(name);
        let secret = reply::string(name)
            .is_some_and(|n| SECRET_PARAMETERS.iter().any(|s| n.eq_ignore_ascii_case(s)));
        match reply::string(value) {
            Some(v) if secret && !v.is_empty() => write::bulk(out, b"(redacted by keyway)"),
            _ => out.extend_from_slice(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(merge: Merge, parts: &[&[u8]]) -> Vec<u8> {
        let mut arena = Vec::new();
        let mut g = Gather::new(merge, Protocol::Resp2, parts.len());
        for (i, p) in parts.iter().enumerate() {
            let a = arena.len();
            arena.extend_from_slice(p);
            g.parts[i] = Some((a, arena.len()));
        }
        let mut out = Vec::new();
        super::merge(&g, &arena, &mut out);
        out
    }

    #[test]
    fn sums_concats_and_first_errors() {
        assert_eq!(run(Merge::SumInt, &[b":3\r\n", b":4\r\n"]), b":7\r\n");
        assert_eq!(
            run(Merge::SumInt, &[b":3\r\n", b"-ERR down\r\n"]),
            b"-ERR down\r\n"
        );
        assert_eq!(
            run(
                Merge::Concat { cap: 10 },
                &[
                    b"*1\r\n$1\r\na\r\n",
                    b"*0\r\n",
                    b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n"
                ]
            ),
            b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        let capped = run(Merge::Concat { cap: 1 }, &[b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n"]);
        assert!(capped.starts_with(b"-ERR KEYS would return 2 keys"));
        assert_eq!(run(Merge::AllOk, &[b"+OK\r\n", b"+OK\r\n"]), b"+OK\r\n");
        assert_eq!(
            run(
                Merge::AndInts,
                &[b"*2\r\n:1\r\n:1\r\n", b"*2\r\n:0\r\n:1\r\n"]
            ),
            b"*2\r\n:0\r\n:1\r\n"
        );
        assert_eq!(
            run(Merge::Same, &[b"$2\r\nab\r\n", b"$2\r\nac\r\n"]),
            b"-ERR backends answered differently\r\n"
        );
        assert_eq!(
            run(
                Merge::AnyNonNull { start: 1 },
                &[b"$1\r\nk\r\n", b"$-1\r\n"]
            ),
            b"$1\r\nk\r\n"
        );
        assert_eq!(
            run(Merge::AnyNonNull { start: 0 }, &[b"$-1\r\n", b"$-1\r\n"]),
            b"$-1\r\n"
        );
    }

    #[test]
    fn command_docs_only_for_what_keyway_serves() {
        assert_eq!(
            run(
                Merge::CommandDocs,
                &[b"*4\r\n$3\r\nget\r\n*0\r\n$7\r\nmonitor\r\n*0\r\n"]
            ),
            b"*2\r\n$3\r\nget\r\n*0\r\n"
        );
    }

    #[test]
    fn scan_cursors_walk_every_backend_in_turn() {
        let scan = |backend, cursor: &str| {
            let reply = format!("*2\r\n${}\r\n{cursor}\r\n*1\r\n$1\r\nk\r\n", cursor.len());
            run(
                Merge::Scan {
                    backend,
                    backends: 3,
                },
                &[reply.as_bytes()],
            )
        };
        // Mid-backend: backend 1's cursor 7 becomes 7*3+1 = 22.
        assert_eq!(scan(1, "7"), b"*2\r\n$2\r\n22\r\n*1\r\n$1\r\nk\r\n");
        assert_eq!(split_cursor(22, 3), (1, 7));
        // A backend done hands over to the next one, at its cursor 0.
        assert_eq!(scan(0, "0"), b"*2\r\n$1\r\n1\r\n*1\r\n$1\r\nk\r\n");
        assert_eq!(split_cursor(1, 3), (1, 0));
        // The last backend done: the whole scan is.
        assert_eq!(scan(2, "0"), b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n");
        assert!(scan(1, "18446744073709551615").starts_with(b"-ERR SCAN cursor"));
    }

    #[test]
    fn command_tables_keep_what_keyway_serves() {
        let get = "*2\r\n$3\r\nget\r\n:2\r\n";
        let monitor = "*2\r\n$7\r\nmonitor\r\n:1\r\n";
        let entries = format!("*3\r\n{get}{monitor}*-1\r\n");
        let table = |t| run(Merge::CommandTable(t), &[entries.as_bytes()]);
        assert_eq!(table(Table::Entries), format!("*1\r\n{get}").as_bytes());
        assert_eq!(
            table(Table::EntriesAsked),
            format!("*3\r\n{get}*-1\r\n*-1\r\n").as_bytes()
        );
        let names = b"*3\r\n$3\r\nget\r\n$7\r\nmonitor\r\n$3\r\nset\r\n";
        let list = |t| run(Merge::CommandTable(t), &[names]);
        assert_eq!(list(Table::Names), b"*2\r\n$3\r\nget\r\n$3\r\nset\r\n");
        assert_eq!(list(Table::Count), b":2\r\n");
    }

    #[test]
    fn slowlogs_merge_newest_first_naming_their_backend() {
        let entry = |id: u8, time: u8| {
            format!(
                "*6\r\n:{id}\r\n:{time}\r\n:5\r\n*1\r\n$3\r\nGET\r\n$9\r\n127.0.0.1\r\n$0\r\n\r\n"
            )
        };
        let a = format!("*2\r\n{}{}", entry(2, 30), entry(1, 10));
        let b = format!("*1\r\n{}", entry(7, 20));
        let merge = Merge::Slowlog {
            count: 2,
            backends: vec!["a:1".into(), "b:2".into()],
        };
        let out = String::from_utf8(run(merge, &[a.as_bytes(), b.as_bytes()])).unwrap();
        let named = |e: String, name: &str| e.replace("$0\r\n\r\n", &format!("$3\r\n{name}\r\n"));
        assert_eq!(
            out,
            format!(
                "*2\r\n{}{}",
                named(entry(2, 30), "a:1"),
                named(entry(7, 20), "b:2")
            )
        );
    }

    #[test]
    fn hello_reports_the_lowest_version_and_remembers_it() {
        let seen = Rc::new(BackendVersion::default());
        let hello = |parts: &[&[u8]]| {
            let h = HelloParts {
                client_id: 7,
                seen: seen.clone(),
            };
            String::from_utf8(run(Merge::Hello(Box::new(h)), parts)).unwrap()
        };
        // No backend answers: keyway's compatibility version, not remembered.
        let out = hello(&[b"-ERR upstream unavailable\r\n"]);
        assert!(out.contains("$7\r\nversion\r\n$5\r\n7.2.4\r\n"), "{out}");
        assert!(out.starts_with("*16\r\n"), "{out}");
        assert_eq!(seen.fresh(), None);
        let out = hello(&[
            b"$29\r\n# Server\r\nredis_version:7.2.4\r\n",
            b"$30\r\n# Server\r\nredis_version:6.2.14\r\n",
        ]);
        assert!(out.contains("$7\r\nversion\r\n$6\r\n6.2.14\r\n"), "{out}");
        assert!(out.contains("$2\r\nid\r\n:7\r\n"), "{out}");
        assert_eq!(seen.fresh().as_deref(), Some("6.2.14"));
    }

    #[test]
    fn info_takes_the_lowest_version_and_sums_keyspaces() {
        let info = InfoParts {
            server: Some("keyway_version:1\r\n".into()),
            rest: "# Replication\r\nrole:master\r\n\r\n".into(),
            keyspace: true,
            seen: Rc::new(BackendVersion::default()),
        };
        let seen = info.seen.clone();
        let a =
            "# Server\r\nredis_version:7.2.4\r\n# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=100\r\n";
        let b = "# Server\r\nredis_version:7.0.15\r\n# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=300,subexpiry=0\r\ndb1:keys=1,expires=0,avg_ttl=0\r\n";
        let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
        let out = run(
            Merge::Info(Box::new(info)),
            &[
                bulk(a).as_bytes(),
                bulk(b).as_bytes(),
                b"-ERR upstream unavailable",
            ],
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("redis_version:7.0.15\r\n"), "{text}");
        assert_eq!(seen.fresh().as_deref(), Some("7.0.15"));
        assert!(text.contains("keyway_backends_failed:1\r\n"), "{text}");
        assert!(
            text.contains("db0:keys=5,expires=2,avg_ttl=200\r\n"),
            "{text}"
        );
        assert!(
            text.contains("db1:keys=1,expires=0,avg_ttl=0\r\n"),
            "{text}"
        );
        assert!(text.contains("# Replication\r\nrole:master\r\n"), "{text}");
        assert!(text.ends_with("avg_ttl=0\r\n\r\n"), "{text:?}");
    }

    #[test]
    fn config_get_hides_the_backends_passwords() {
        let reply = b"*4\r\n$11\r\nrequirepass\r\n$6\r\nsecret\r\n$7\r\nmaxconn\r\n$2\r\n10\r\n";
        let mut out = Vec::new();
        redact_config(reply, Protocol::Resp2, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            !text.contains("secret") && text.contains("redacted"),
            "{text}"
        );
        assert!(text.ends_with("$7\r\nmaxconn\r\n$2\r\n10\r\n"), "{text}");
        // Unset stays empty; errors pass as they came.
        let unset = b"*2\r\n$10\r\nmasterauth\r\n$0\r\n\r\n";
        let mut out = Vec::new();
        redact_config(unset, Protocol::Resp2, &mut out);
        assert_eq!(out, unset);
        let mut out = Vec::new();
        redact_config(b"-ERR nope\r\n", Protocol::Resp3, &mut out);
        assert_eq!(out, b"-ERR nope\r\n");
    }
}
