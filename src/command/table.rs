//! The static command table. Key positions follow Redis's `COMMAND INFO`
//! (first, last, step), or a `numkeys` argument for EVAL-like commands.

use std::sync::OnceLock;

/// Where a command's keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    None,
    /// Keys at `first`, `first+step`, ... up to `last` (negative: from the end).
    Range {
        first: u8,
        last: i8,
        step: u8,
    },
    /// The argument at `at` counts the keys that follow it (EVAL, LMPOP, ZUNION).
    NumKeys {
        at: u8,
    },
    /// A destination key at 1, then `numkeys` at 2 and the keys (ZUNIONSTORE).
    StoreNumKeys,
    /// SORT/SORT_RO: the key at 1, and the STORE destination if any.
    Sort,
    /// GEORADIUS(BYMEMBER): the key at 1, and STORE/STOREDIST destinations;
    /// options start at the given argument.
    GeoRadius {
        options: u8,
    },
    /// XREAD/XREADGROUP: the keys after STREAMS (half of what follows).
    Streams,
}

/// Multi-key commands keyway splits per endpoint and merges back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// MGET: an array of values in key order.
    Mget,
    /// MSET: `+OK` when every part said so.
    Mset,
    /// DEL, UNLINK, EXISTS, TOUCH: the sum of the parts' integers.
    SumInt,
}

/// Commands keyway answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    Ping,
    Echo,
    Quit,
    Select,
    Command,
    Hello,
    Client,
    Auth,
    Role,
    Reset,
    HotKeys,
}

/// Where a blocking command says how long it may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Seconds (a float, 0 = forever) in the last argument: BLPOP, BRPOP,
    /// BZPOPMIN/MAX, BRPOPLPUSH, BLMOVE.
    LastSeconds,
    /// Seconds in argument 1: BLMPOP, BZMPOP.
    FirstSeconds,
    /// Milliseconds after a BLOCK option (XREAD, XREADGROUP); without it
    /// the command does not block.
    BlockOption,
}

/// Commands every backend answers a part of (see `session::fanout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fan {
    Info,
    Dbsize,
    Flush,
    Keys,
    Scan,
    RandomKey,
    /// TIME, LASTSAVE: the first backend's answer.
    FirstBackend,
    Script,
    Function,
    Config,
    /// PUBSUB CHANNELS/NUMSUB/NUMPAT/SHARDCHANNELS/SHARDNUMSUB.
    PubSubInfo,
    /// SLOWLOG GET/LEN/RESET: every backend's, merged, each entry naming
    /// its backend.
    Slowlog,
    /// LATENCY LATEST/HISTORY/RESET/DOCTOR/GRAPH/HISTOGRAM, likewise.
    Latency,
    /// WAIT: on a connection of its own to each primary this client wrote
    /// to (see `session::blocking`).
    Wait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exec {
    /// Sent to the endpoint owning its keys; all keys must share one.
    Forward,
    Split(Split),
    Local(Local),
    /// Sent to every backend; the replies are merged.
    Fanout(Fan),
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH (see `session::transaction`).
    Transaction,
    /// May block on the backend: sent over a connection of its own, so
    /// nobody else's requests wait behind it (see `session::blocking`).
    Blocking(Block),
    /// SUBSCRIBE and the rest of pub/sub (see `session::pubsub`).
    PubSub,
    /// Cannot work through a sharding proxy.
    Unsupported,
}

#[derive(Debug)]
pub struct CommandSpec {
    pub name: &'static str,
    /// Redis arity: n = exactly n arguments (name included), -n = at least n.
    pub arity: i32,
    pub write: bool,
    pub keys: KeySpec,
    pub exec: Exec,
}

impl CommandSpec {
    pub fn arity_ok(&self, argc: usize) -> bool {
        if self.arity >= 0 {
            argc == self.arity as usize
        } else {
            argc >= (-self.arity) as usize
        }
    }
}

const R: bool = false;
const W: bool = true;

macro_rules! cmd {
    ($name:literal, $arity:expr, $write:expr, $keys:expr, $exec:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            write: $write,
            keys: $keys,
            exec: $exec,
        }
    };
}

const fn k(first: u8, last: i8, step: u8) -> KeySpec {
    KeySpec::Range { first, last, step }
}
const K1: KeySpec = k(1, 1, 1);
const K12: KeySpec = k(1, 2, 1);
const KALL: KeySpec = k(1, -1, 1);
const NK1: KeySpec = KeySpec::NumKeys { at: 1 };
const NK2: KeySpec = KeySpec::NumKeys { at: 2 };
const NONE: KeySpec = KeySpec::None;
const F: Exec = Exec::Forward;
const U: Exec = Exec::Unsupported;
const fn l(c: Local) -> Exec {
    Exec::Local(c)
}
const fn fan(f: Fan) -> Exec {
    Exec::Fanout(f)
}
const fn blk(b: Block) -> Exec {
    Exec::Blocking(b)
}

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    // strings
    cmd!("get", 2, R, K1, F), cmd!("set", -3, W, K1, F), cmd!("setnx", 3, W, K1, F),
    cmd!("setex", 4, W, K1, F), cmd!("psetex", 4, W, K1, F), cmd!("getex", -2, W, K1, F),
    cmd!("getdel", 2, W, K1, F), cmd!("getset", 3, W, K1, F), cmd!("append", 3, W, K1, F),
    cmd!("strlen", 2, R, K1, F), cmd!("incr", 2, W, K1, F), cmd!("decr", 2, W, K1, F),
    cmd!("incrby", 3, W, K1, F), cmd!("decrby", 3, W, K1, F), cmd!("incrbyfloat", 3, W, K1, F),
    cmd!("getrange", 4, R, K1, F), cmd!("setrange", 4, W, K1, F), cmd!("substr", 4, R, K1, F),
    cmd!("getbit", 3, R, K1, F), cmd!("setbit", 4, W, K1, F), cmd!("bitcount", -2, R, K1, F),
    cmd!("bitpos", -3, R, K1, F), cmd!("bitfield", -2, W, K1, F), cmd!("bitfield_ro", -2, R, K1, F),
    cmd!("bitop", -4, W, k(2, -1, 1), F), cmd!("lcs", -3, R, K12, F),
    cmd!("mget", -2, R, KALL, Exec::Split(Split::Mget)),
    cmd!("mset", -3, W, k(1, -1, 2), Exec::Split(Split::Mset)),
    cmd!("msetnx", -3, W, k(1, -1, 2), F),
    // keys
    cmd!("del", -2, W, KALL, Exec::Split(Split::SumInt)),
    cmd!("unlink", -2, W, KALL, Exec::Split(Split::SumInt)),
    cmd!("exists", -2, R, KALL, Exec::Split(Split::SumInt)),
    cmd!("touch", -2, R, KALL, Exec::Split(Split::SumInt)),
    cmd!("expire", -3, W, K1, F), cmd!("pexpire", -3, W, K1, F), cmd!("expireat", -3, W, K1, F),
    cmd!("pexpireat", -3, W, K1, F), cmd!("expiretime", 2, R, K1, F), cmd!("pexpiretime", 2, R, K1, F),
    cmd!("ttl", 2, R, K1, F), cmd!("pttl", 2, R, K1, F), cmd!("persist", 2, W, K1, F),
    cmd!("type", 2, R, K1, F), cmd!("dump", 2, R, K1, F), cmd!("restore", -4, W, K1, F),
    cmd!("rename", 3, W, K12, F), cmd!("renamenx", 3, W, K12, F), cmd!("copy", -3, W, K12, F),
    cmd!("object", -2, R, k(2, 2, 1), F), cmd!("memory", -2, R, k(2, 2, 1), F),
    cmd!("sort", -2, W, KeySpec::Sort, F), cmd!("sort_ro", -2, R, KeySpec::Sort, F),
    // hashes
    cmd!("hset", -4, W, K1, F), cmd!("hsetnx", 4, W, K1, F), cmd!("hget", 3, R, K1, F),
    cmd!("hmset", -4, W, K1, F), cmd!("hmget", -3, R, K1, F), cmd!("hdel", -3, W, K1, F),
    cmd!("hlen", 2, R, K1, F), cmd!("hstrlen", 3, R, K1, F), cmd!("hkeys", 2, R, K1, F),
    cmd!("hvals", 2, R, K1, F), cmd!("hgetall", 2, R, K1, F), cmd!("hexists", 3, R, K1, F),
    cmd!("hincrby", 4, W, K1, F), cmd!("hincrbyfloat", 4, W, K1, F), cmd!("hrandfield", -2, R, K1, F),
    cmd!("hscan", -3, R, K1, F), cmd!("hgetdel", -5, W, K1, F), cmd!("hgetex", -5, W, K1, F),
    cmd!("hsetex", -6, W, K1, F), cmd!("hexpire", -6, W, K1, F), cmd!("hpexpire", -6, W, K1, F),
    cmd!("hexpireat", -6, W, K1, F), cmd!("hpexpireat", -6, W, K1, F), cmd!("httl", -5, R, K1, F),
    cmd!("hpttl", -5, R, K1, F), cmd!("hexpiretime", -5, R, K1, F), cmd!("hpexpiretime", -5, R, K1, F),
    cmd!("hpersist", -5, W, K1, F),
    // lists
    cmd!("lpush", -3, W, K1, F), cmd!("rpush", -3, W, K1, F), cmd!("lpushx", -3, W, K1, F),
    cmd!("rpushx", -3, W, K1, F), cmd!("lpop", -2, W, K1, F), cmd!("rpop", -2, W, K1, F),
    cmd!("llen", 2, R, K1, F), cmd!("lindex", 3, R, K1, F), cmd!("lrange", 4, R, K1, F),
    cmd!("lset", 4, W, K1, F), cmd!("lrem", 4, W, K1, F), cmd!("ltrim", 4, W, K1, F),
    cmd!("linsert", 5, W, K1, F), cmd!("lpos", -3, R, K1, F), cmd!("rpoplpush", 3, W, K12, F),
    cmd!("lmove", 5, W, K12, F), cmd!("lmpop", -4, W, NK1, F),
    // sets
    cmd!("sadd", -3, W, K1, F), cmd!("srem", -3, W, K1, F), cmd!("smembers", 2, R, K1, F),
    cmd!("sismember", 3, R, K1, F), cmd!("smismember", -3, R, K1, F), cmd!("scard", 2, R, K1, F),
    cmd!("spop", -2, W, K1, F), cmd!("srandmember", -2, R, K1, F), cmd!("smove", 4, W, K12, F),
    cmd!("sinter", -2, R, KALL, F), cmd!("sunion", -2, R, KALL, F), cmd!("sdiff", -2, R, KALL, F),
    cmd!("sinterstore", -3, W, KALL, F), cmd!("sunionstore", -3, W, KALL, F),
    cmd!("sdiffstore", -3, W, KALL, F), cmd!("sintercard", -3, R, NK1, F), cmd!("sscan", -3, R, K1, F),
    // sorted sets
    cmd!("zadd", -4, W, K1, F), cmd!("zincrby", 4, W, K1, F), cmd!("zrem", -3, W, K1, F),
    cmd!("zcard", 2, R, K1, F), cmd!("zscore", 3, R, K1, F), cmd!("zmscore", -3, R, K1, F),
    cmd!("zrank", -3, R, K1, F), cmd!("zrevrank", -3, R, K1, F), cmd!("zrange", -4, R, K1, F),
    cmd!("zrangebyscore", -4, R, K1, F), cmd!("zrevrange", -4, R, K1, F),
    cmd!("zrevrangebyscore", -4, R, K1, F), cmd!("zrangebylex", -4, R, K1, F),
    cmd!("zrevrangebylex", -4, R, K1, F), cmd!("zlexcount", 4, R, K1, F), cmd!("zcount", 4, R, K1, F),
    cmd!("zremrangebyrank", 4, W, K1, F), cmd!("zremrangebyscore", 4, W, K1, F),
    cmd!("zremrangebylex", 4, W, K1, F), cmd!("zpopmin", -2, W, K1, F), cmd!("zpopmax", -2, W, K1, F),
    cmd!("zrandmember", -2, R, K1, F), cmd!("zscan", -3, R, K1, F), cmd!("zrangestore", -5, W, K12, F),
    cmd!("zunionstore", -4, W, KeySpec::StoreNumKeys, F), cmd!("zinterstore", -4, W, KeySpec::StoreNumKeys, F),
    cmd!("zdiffstore", -4, W, KeySpec::StoreNumKeys, F), cmd!("zunion", -3, R, NK1, F),
    cmd!("zinter", -3, R, NK1, F), cmd!("zdiff", -3, R, NK1, F), cmd!("zintercard", -3, R, NK1, F),
    cmd!("zmpop", -4, W, NK1, F),
    // hyperloglog, geo, streams
    cmd!("pfadd", -2, W, K1, F), cmd!("pfcount", -2, R, KALL, F), cmd!("pfmerge", -2, W, KALL, F),
    cmd!("geoadd", -5, W, K1, F), cmd!("geodist", -4, R, K1, F), cmd!("geohash", -2, R, K1, F),
    cmd!("geopos", -2, R, K1, F), cmd!("georadius", -6, W, KeySpec::GeoRadius { options: 6 }, F),
    cmd!("georadiusbymember", -5, W, KeySpec::GeoRadius { options: 5 }, F),
    cmd!("georadius_ro", -6, R, K1, F), cmd!("georadiusbymember_ro", -5, R, K1, F),
    cmd!("geosearch", -7, R, K1, F), cmd!("geosearchstore", -8, W, K12, F),
    cmd!("xadd", -5, W, K1, F), cmd!("xlen", 2, R, K1, F), cmd!("xrange", -4, R, K1, F),
    cmd!("xrevrange", -4, R, K1, F), cmd!("xdel", -3, W, K1, F), cmd!("xtrim", -4, W, K1, F),
    cmd!("xack", -4, W, K1, F), cmd!("xpending", -3, R, K1, F), cmd!("xclaim", -6, W, K1, F),
    cmd!("xautoclaim", -6, W, K1, F), cmd!("xsetid", -3, W, K1, F), cmd!("xinfo", -3, R, k(2, 2, 1), F),
    cmd!("xgroup", -3, W, k(2, 2, 1), F),
    // scripting: routed by their keys, which must share one endpoint
    cmd!("eval", -3, W, NK2, F), cmd!("evalsha", -3, W, NK2, F), cmd!("eval_ro", -3, R, NK2, F),
    cmd!("evalsha_ro", -3, R, NK2, F), cmd!("fcall", -3, W, NK2, F), cmd!("fcall_ro", -3, R, NK2, F),
    // answered by keyway
    cmd!("ping", -1, R, NONE, l(Local::Ping)), cmd!("echo", 2, R, NONE, l(Local::Echo)),
    cmd!("quit", -1, R, NONE, l(Local::Quit)), cmd!("select", 2, R, NONE, l(Local::Select)),
    cmd!("command", -1, R, NONE, l(Local::Command)), cmd!("hello", -1, R, NONE, l(Local::Hello)),
    cmd!("client", -2, R, NONE, l(Local::Client)), cmd!("auth", -2, R, NONE, l(Local::Auth)),
    cmd!("role", 1, R, NONE, l(Local::Role)), cmd!("reset", 1, R, NONE, l(Local::Reset)),
    cmd!("hotkeys", -2, R, NONE, l(Local::HotKeys)),
    // answered by every backend together
    cmd!("info", -1, R, NONE, fan(Fan::Info)), cmd!("dbsize", 1, R, NONE, fan(Fan::Dbsize)),
    cmd!("flushdb", -1, W, NONE, fan(Fan::Flush)), cmd!("flushall", -1, W, NONE, fan(Fan::Flush)),
    cmd!("keys", 2, R, NONE, fan(Fan::Keys)), cmd!("scan", -2, R, NONE, fan(Fan::Scan)),
    cmd!("randomkey", 1, R, NONE, fan(Fan::RandomKey)),
    cmd!("time", 1, R, NONE, fan(Fan::FirstBackend)), cmd!("lastsave", 1, R, NONE, fan(Fan::FirstBackend)),
    cmd!("script", -2, W, NONE, fan(Fan::Script)), cmd!("config", -2, R, NONE, fan(Fan::Config)),
    cmd!("function", -2, W, NONE, fan(Fan::Function)),
    cmd!("pubsub", -2, R, NONE, fan(Fan::PubSubInfo)),
    // blocking, each on a connection of its own while it blocks
    cmd!("blpop", -3, W, k(1, -2, 1), blk(Block::LastSeconds)),
    cmd!("brpop", -3, W, k(1, -2, 1), blk(Block::LastSeconds)),
    cmd!("bzpopmin", -3, W, k(1, -2, 1), blk(Block::LastSeconds)),
    cmd!("bzpopmax", -3, W, k(1, -2, 1), blk(Block::LastSeconds)),
    cmd!("brpoplpush", 4, W, K12, blk(Block::LastSeconds)),
    cmd!("blmove", 6, W, K12, blk(Block::LastSeconds)),
    cmd!("blmpop", -5, W, NK2, blk(Block::FirstSeconds)),
    cmd!("bzmpop", -5, W, NK2, blk(Block::FirstSeconds)),
    cmd!("xread", -4, R, KeySpec::Streams, blk(Block::BlockOption)),
    cmd!("xreadgroup", -7, W, KeySpec::Streams, blk(Block::BlockOption)),
    // pub/sub: a channel lives where its name hashes
    cmd!("subscribe", -2, R, NONE, Exec::PubSub), cmd!("unsubscribe", -1, R, NONE, Exec::PubSub),
    cmd!("psubscribe", -2, R, NONE, Exec::PubSub), cmd!("punsubscribe", -1, R, NONE, Exec::PubSub),
    cmd!("ssubscribe", -2, R, NONE, Exec::PubSub), cmd!("sunsubscribe", -1, R, NONE, Exec::PubSub),
    cmd!("publish", 3, W, NONE, Exec::PubSub), cmd!("spublish", 3, W, NONE, Exec::PubSub),
    // transactions, on the backend of their keys
    cmd!("multi", 1, R, NONE, Exec::Transaction), cmd!("exec", 1, W, NONE, Exec::Transaction),
    cmd!("discard", 1, R, NONE, Exec::Transaction), cmd!("watch", -2, R, KALL, Exec::Transaction),
    cmd!("unwatch", 1, R, NONE, Exec::Transaction),
    // cannot work through a sharding proxy
    cmd!("save", 1, R, NONE, U), cmd!("bgsave", -1, R, NONE, U),
    cmd!("bgrewriteaof", 1, R, NONE, U), cmd!("shutdown", -1, R, NONE, U), cmd!("slaveof", 3, R, NONE, U),
    cmd!("replicaof", 3, R, NONE, U), cmd!("sync", 1, R, NONE, U), cmd!("psync", -3, R, NONE, U),
    cmd!("debug", -2, R, NONE, U), cmd!("monitor", 1, R, NONE, U), cmd!("slowlog", -2, R, NONE, fan(Fan::Slowlog)),
    cmd!("latency", -2, R, NONE, fan(Fan::Latency)), cmd!("acl", -2, R, NONE, U),
    cmd!("cluster", -2, R, NONE, U), cmd!("readonly", 1, R, NONE, U),
    cmd!("readwrite", 1, R, NONE, U), cmd!("asking", 1, R, NONE, U), cmd!("wait", 3, R, NONE, fan(Fan::Wait)),
    cmd!("waitaof", 4, R, NONE, U), cmd!("move", 3, W, NONE, U), cmd!("swapdb", 3, W, NONE, U),
    cmd!("migrate", -6, W, NONE, U),
    cmd!("lolwut", -1, R, NONE, U), cmd!("module", -2, R, NONE, U), cmd!("failover", -1, R, NONE, U),
    cmd!("memory_doctor", 1, R, NONE, U),
];

const MAX_NAME: usize = 32;

/// Slots of the command index: a power of two over four times the number
/// of commands, so a lookup rarely probes past its first slot.
const INDEX_SLOTS: usize = 1024;
const EMPTY: u16 = u16::MAX;

/// A hash of a command name blind to ASCII case: `| 0x20` folds letters
/// (other bytes need only hash alike, for the name is compared in full).
#[inline(always)]
fn name_hash(name: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name {
        h = (h ^ (b | 0x20) as u32).wrapping_mul(0x0100_0193);
    }
    h as usize
}

/// Open addressing over the `COMMANDS` whose names are over 8 bytes (the
/// others are in `short_index`): each slot holds a command's position or
/// `EMPTY`; a name's probe starts at its hash and ends at its command or
/// an empty slot. Cheaper than a general map: no lower-cased copy of the
/// name, a hash of a few instructions per byte, one comparison.
fn index() -> &'static [u16; INDEX_SLOTS] {
    static INDEX: OnceLock<[u16; INDEX_SLOTS]> = OnceLock::new();
    INDEX.get_or_init(|| {
        assert!(COMMANDS.len() * 4 <= INDEX_SLOTS, "grow INDEX_SLOTS");
        let mut index = [EMPTY; INDEX_SLOTS];
        for (n, c) in COMMANDS.iter().enumerate() {
            if c.name.len() <= 8 {
                continue;
            }
            let mut i = name_hash(c.name.as_bytes());
            while index[i % INDEX_SLOTS] != EMPTY {
                i += 1;
            }
            index[i % INDEX_SLOTS] = n as u16;
        }
        index
    })
}

/// Slots of the index of names of at most 8 bytes (GET, SET, HSET...,
/// nearly every command a client sends): a power of two over twice their
/// number.
const SHORT_SLOTS: usize = 512;

/// A command name of at most 8 bytes held as one little-endian word
/// (zero past its end): a name is found by one multiply and one compare
/// instead of a hash and a compare per byte.
#[derive(Clone, Copy)]
struct Short {
    /// The name, lower-cased.
    word: u64,
    /// 0x20 in each byte that is a letter: the only bit a client's case
    /// may change, so `client | case == word` compares blind to case
    /// there and exactly everywhere else.
    case: u64,
    /// 0 for an empty slot.
    len: u8,
    command: u16,
}

/// `name` (at most 8 bytes) as a word, zero past its end, read in at most
/// two loads that may overlap instead of byte by byte.
#[inline(always)]
fn short_word(name: &[u8]) -> u64 {
    let n = name.len();
    debug_assert!(n <= 8);
    if n >= 4 {
        let lo = u32::from_le_bytes([name[0], name[1], name[2], name[3]]) as u64;
        let hi = u32::from_le_bytes([name[n - 4], name[n - 3], name[n - 2], name[n - 1]]) as u64;
        lo | hi << (8 * (n - 4))
    } else if n > 0 {
        name[0] as u64
            | (name[n / 2] as u64) << (8 * (n / 2))
            | (name[n - 1] as u64) << (8 * (n - 1))
    } else {
        0
    }
}

/// The slot a name of `len` bytes starts its probe at: its word with every
/// byte `| 0x20`, so both cases of a letter land alike.
#[inline(always)]
fn short_slot(word: u64, len: usize) -> usize {
    let fold = 0x2020_2020_2020_2020u64 >> (8 * (8 - len));
    ((word | fold).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHORT_SLOTS.trailing_zeros()))
        as usize
}

/// Open addressing, as `index`, over the commands whose names are at
/// most 8 bytes; a slot of `len` 0 ends a probe.
fn short_index() -> &'static [Short; SHORT_SLOTS] {
    static INDEX: OnceLock<[Short; SHORT_SLOTS]> = OnceLock::new();
    INDEX.get_or_init(|| {
        let empty = Short {
            word: 0,
            case: 0,
            len: 0,
            command: 0,
        };
        let mut index = [empty; SHORT_SLOTS];
        for (n, c) in COMMANDS.iter().enumerate() {
            let name = c.name.as_bytes();
            if name.len() > 8 {
                continue;
            }
            let letters: Vec<u8> = name
                .iter()
                .map(|b| if b.is_ascii_alphabetic() { 0x20 } else { 0 })
                .collect();
            let word = short_word(&name.to_ascii_lowercase());
            let mut i = short_slot(word, name.len());
            while index[i % SHORT_SLOTS].len != 0 {
                i += 1;
            }
            index[i % SHORT_SLOTS] = Short {
                word,
                case: short_word(&letters),
                len: name.len() as u8,
                command: n as u16,
            };
        }
        assert!(
            index.iter().filter(|s| s.len != 0).count() * 2 <= SHORT_SLOTS,
            "grow SHORT_SLOTS"
        );
        index
    })
}

/// Case-insensitive lookup, without allocating.
#[inline(always)]
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > 8 {
        return lookup_long(name);
    }
    if name.is_empty() {
        return None;
    }
    let index = short_index();
    let word = short_word(name);
    let mut i = short_slot(word, name.len());
    loop {
        let s = &index[i % SHORT_SLOTS];
        if s.len == 0 {
            return None;
        }
        if s.len as usize == name.len() && word | s.case == s.word {
            return COMMANDS.get(s.command as usize);
        }
        i += 1;
    }
}

/// `lookup` of a name over 8 bytes.
#[inline(never)]
fn lookup_long(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > MAX_NAME {
        return None;
    }
    let index = index();
    let mut i = name_hash(name);
    loop {
        // An empty slot (past COMMANDS' end) ends the probe.
        let spec = COMMANDS.get(index[i % INDEX_SLOTS] as usize)?;
        if spec.name.len() == name.len() && spec.name.as_bytes().eq_ignore_ascii_case(name) {
            return Some(spec);
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_and_unique() {
        assert_eq!(lookup(b"GET").map(|c| c.name), Some("get"));
        assert_eq!(lookup(b"gEt").map(|c| c.name), Some("get"));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
        assert!(lookup(b"").is_none());
        // Every command is found by its name in either case, as itself
        // (a duplicate name would find the first one).
        for c in COMMANDS {
            let upper = c.name.to_ascii_uppercase();
            for name in [c.name.as_bytes(), upper.as_bytes()] {
                let found = lookup(name).map(|f| f as *const CommandSpec);
                assert_eq!(found, Some(c as *const CommandSpec), "{}", c.name);
            }
            // Bytes that fold alike under `| 0x20` but are not the name.
            let mut odd = c.name.as_bytes().to_vec();
            if let Some(u) = odd.iter_mut().find(|b| **b == b'_') {
                *u = 0x7f;
                assert!(lookup(&odd).is_none(), "{}", c.name);
            }
        }
    }

    #[test]
    fn short_words_hold_the_name_and_zero_past_it() {
        let name = b"abcdefgh";
        for n in 0..=8 {
            let mut plain = [0u8; 8];
            plain[..n].copy_from_slice(&name[..n]);
            assert_eq!(short_word(&name[..n]), u64::from_le_bytes(plain), "{n}");
        }
    }

    /// The word-at-a-time index answers as a plain search of the table
    /// does: names of every command with one byte changed in every way a
    /// case fold could confuse, and random short names.
    #[test]
    fn lookup_agrees_with_a_plain_search() {
        let plain = |name: &[u8]| {
            COMMANDS
                .iter()
                .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
                .map(|c| c as *const CommandSpec)
        };
        let found = |name: &[u8]| lookup(name).map(|c| c as *const CommandSpec);
        for c in COMMANDS {
            let name = c.name.as_bytes();
            for i in 0..name.len() {
                for flip in [0x20u8, 0x40, 0x01, 0x80] {
                    let mut odd = name.to_vec();
                    odd[i] ^= flip;
                    assert_eq!(found(&odd), plain(&odd), "{:?}", odd);
                }
            }
        }
        let mut rng = crate::testing::Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..200_000 {
            let x = rng.number();
            let len = (x % 9) as usize;
            let name: Vec<u8> = (0..len)
                .map(|i| b"sSeEtTgG_-0\x7f"[(x >> (8 + 4 * i)) as usize % 12])
                .collect();
            assert_eq!(found(&name), plain(&name), "{:?}", name);
        }
    }

    #[test]
    fn arity() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let set = lookup(b"set").unwrap();
        assert!(set.arity_ok(3) && set.arity_ok(5) && !set.arity_ok(2));
    }
}
