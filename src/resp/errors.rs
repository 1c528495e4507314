//! Every error reply keyway writes itself, and its text: here and nowhere
//! else. Where Redis has words for a case, they are Redis's to the letter
//! (client libraries match on them); keyway's own say what happened and
//! what to do. Layers hand an `ErrorReply` on; the session writes it.

use std::fmt;

use super::request::ProtocolError;

/// An error reply; `Display` gives its text, code first, without the `-`
/// and line end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorReply<'a> {
    // Redis's words.
    /// A command given the wrong number of arguments (its lowercase name,
    /// `client|kill` for a subcommand).
    WrongArity(&'a str),
    /// A subcommand given the wrong number of arguments: the command and
    /// the subcommand, both lowercase (`client`, `setname`).
    SubcommandArity {
        command: &'a str,
        sub: &'a str,
    },
    Syntax,
    NotInteger,
    /// A command Redis does not know: its name and first arguments, quoted.
    UnknownCommand {
        name: &'a str,
        args: &'a str,
    },
    /// `HELP`-style subcommand errors: the subcommand, quoted, and the command.
    UnknownSubcommand {
        sub: &'a str,
        command: &'a str,
    },
    UnknownSubcommandOrArity {
        sub: &'a str,
        command: &'a str,
    },
    /// HOTKEYS START, STOP or RESET: keyway samples all the time.
    HotKeysAlwaysOn,
    NoAuth,
    HelloNoAuth,
    WrongPass,
    AuthWithoutPassword,
    NoProto,
    ProtoNotInteger,
    HelloOption(&'a str),
    BadClientName,
    /// A CLIENT SETINFO attribute's value with spaces or special characters.
    BadClientInfo(&'a str),
    UnrecognizedOption(&'a str),
    SelectInCluster,
    DbOutOfRange,
    InvalidClientId,
    ClientIdNotPositive,
    UnknownClientType(&'a str),
    NoSuchClient,
    InvalidCursor,
    MultiNested,
    DiscardWithoutMulti,
    ExecWithoutMulti,
    WatchInMulti,
    ExecAbort,
    /// A command a RESP2 subscriber may not send.
    SubscribedContext(&'a str),
    Protocol(ProtocolError),
    TimeoutNotInteger,
    TimeoutNegative,
    NumKeysNegative,
    NumKeysTooMany,
    /// SORT's BY or GET option, which may read keys elsewhere.
    SortPattern(&'a str),
    XreadUnbalanced,
    CrossSlot,
    ClusterDown,
    MaxClients,

    // keyway's words.
    /// A command keyway does not forward (quoted name, subcommand included).
    Unsupported(&'a str),
    /// A subcommand keyway does not forward: the command and the
    /// subcommand, both uppercase (`CLIENT`, `TRACKING`).
    UnsupportedSubcommand {
        command: &'a str,
        sub: &'a str,
    },
    /// CLIENT <sub> ON, which would change connections clients share.
    ClientOptionOn(&'a str),
    CommandNeedsBackend(&'a str),
    NotInMulti(&'a str),
    WatchCrossSlot,
    ExecAbortMoved,
    ExecAbortBecause(&'a str),
    QueuedCommandLost,
    ReplyMissing,
    PartReplyMissing,
    BackendsDisagree,
    KeysOverLimit {
        total: usize,
        limit: usize,
    },
    ScanCursorTooLarge,
    /// A backend's reply of the wrong shape (what was expected).
    UnexpectedReply(&'a str),
    UnexpectedMgetReply,
    /// A Redis Cluster without a slot map, and why (None: no node answered).
    NoSlotMapYet {
        cluster: &'a str,
        why: Option<&'a str>,
    },
    NoBackendToAsk,
    FlushDisabled(&'a str),
    ConfigSubcommand(&'a str),
    KeylessNotRoutable(&'a str),
    BlockingWithoutKeys(&'a str),
    WaitInRedisCluster,
    UnblockedByReload,
    /// A key of a cluster being resharded could not be moved to its new
    /// owner (the key quoted, the old owner's error): the command did not run.
    MoveFailed {
        key: &'a str,
        why: &'a str,
    },
    /// A cluster's placement is being switched and the switch did not
    /// finish in time: the command did not run.
    ReshardHeld,
    /// No prefix route or catch-all for a key or channel.
    NoRoute {
        what: &'a str,
        name: &'a str,
    },
    /// A key or channel of a Redis Cluster whose slot map has no shard
    /// for it yet (`slot_unserved`) or is not known yet.
    CannotPlaceYet {
        what: &'a str,
        name: &'a str,
        slot_unserved: bool,
    },
    TransactionKeyElsewhere(&'a str),
    UpstreamTimeout,
    /// The backend (its label) cannot be reached.
    UpstreamUnavailable(&'a str),
    UpstreamAuthFailed(&'a str),
    UpstreamTlsFailed(&'a str),
    OutOfDescriptors,
    ProtectedMode,
}

impl fmt::Display for ErrorReply<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.redis_words(f) {
            Some(written) => written,
            None => self.keyway_words(f),
        }
    }
}

impl ErrorReply<'_> {
    /// The text of a case Redis has words for; None for keyway's own.
    fn redis_words(&self, f: &mut fmt::Formatter<'_>) -> Option<fmt::Result> {
        use ErrorReply::*;
        Some(match self {
            WrongArity(name) => write!(f, "ERR wrong number of arguments for '{name}' command"),
            SubcommandArity { command, sub } => write!(
                f,
                "ERR wrong number of arguments for '{command}|{sub}' command"
            ),
            Syntax => f.write_str("ERR syntax error"),
            NotInteger => f.write_str("ERR value is not an integer or out of range"),
            UnknownCommand { name, args } => write!(
                f,
                "ERR unknown command '{name}', with args beginning with: {args}"
            ),
            UnknownSubcommand { sub, command } => {
                write!(f, "ERR unknown subcommand '{sub}'. Try {command} HELP.")
            }
            UnknownSubcommandOrArity { sub, command } => write!(
                f,
                "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {command} HELP."
            ),
            HotKeysAlwaysOn => f.write_str("ERR keyway tracks hot keys all the time (one request in [admin] hot_keys_sample, over the last 10 to 20 seconds, on every core): HOTKEYS GET reads them; [admin] hot_keys = false turns tracking off"),
            NoAuth => f.write_str("NOAUTH Authentication required."),
            HelloNoAuth => f.write_str("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"),
            WrongPass => f.write_str("WRONGPASS invalid username-password pair or user is disabled."),
            AuthWithoutPassword => f.write_str("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"),
            NoProto => f.write_str("NOPROTO unsupported protocol version"),
            ProtoNotInteger => f.write_str("ERR Protocol version is not an integer or out of range"),
            HelloOption(opt) => write!(f, "ERR Syntax error in HELLO option '{opt}'"),
            BadClientName => f.write_str(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            ),
            BadClientInfo(attr) => write!(
                f,
                "ERR {attr} cannot contain spaces, newlines or special characters."
            ),
            UnrecognizedOption(opt) => write!(f, "ERR Unrecognized option '{opt}'"),
            SelectInCluster => f.write_str("ERR SELECT is not allowed in cluster mode"),
            DbOutOfRange => f.write_str("ERR DB index is out of range"),
            InvalidClientId => f.write_str("ERR Invalid client ID"),
            ClientIdNotPositive => f.write_str("ERR client-id should be greater than 0"),
            UnknownClientType(t) => write!(f, "ERR Unknown client type '{t}'"),
            NoSuchClient => f.write_str("ERR No such client"),
            InvalidCursor => f.write_str("ERR invalid cursor"),
            MultiNested => f.write_str("ERR MULTI calls can not be nested"),
            DiscardWithoutMulti => f.write_str("ERR DISCARD without MULTI"),
            ExecWithoutMulti => f.write_str("ERR EXEC without MULTI"),
            WatchInMulti => f.write_str("ERR WATCH inside MULTI is not allowed"),
            ExecAbort => f.write_str("EXECABORT Transaction discarded because of previous errors."),
            SubscribedContext(name) => write!(
                f,
                "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
            ),
            Protocol(why) => write!(f, "ERR Protocol error: {why}"),
            TimeoutNotInteger => f.write_str("ERR timeout is not an integer or out of range"),
            TimeoutNegative => f.write_str("ERR timeout is negative"),
            NumKeysNegative => f.write_str("ERR Number of keys can't be negative"),
            NumKeysTooMany => f.write_str("ERR Number of keys can't be greater than number of args"),
            SortPattern(option) => write!(f, "ERR {option} option of SORT denied in Cluster mode."),
            XreadUnbalanced => f.write_str("ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified."),
            CrossSlot => f.write_str("CROSSSLOT Keys in request don't hash to the same slot"),
            ClusterDown => f.write_str("CLUSTERDOWN Hash slot not served"),
            MaxClients => f.write_str("ERR max number of clients reached"),
            _ => return None,
        })
    }

    /// The text of keyway's own cases.
    fn keyway_words(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorReply::*;
        match self {
            Unsupported(name) => write!(f, "ERR unsupported command '{name}'"),
            UnsupportedSubcommand { command, sub } => {
                write!(f, "ERR unsupported command '{command} {sub}'")
            }
            ClientOptionOn(sub) => write!(
                f,
                "ERR CLIENT {sub} ON is not available through keyway: clients share its backend connections"
            ),
            CommandNeedsBackend(sub) => write!(
                f,
                "ERR COMMAND {sub} needs a backend, and no route leads to one"
            ),
            NotInMulti(name) => write!(f, "ERR '{name}' inside MULTI is not supported by keyway"),
            WatchCrossSlot => f.write_str("CROSSSLOT Keys in request don't hash to the same slot (keyway watches keys of one backend per client)"),
            ExecAbortMoved => f.write_str("EXECABORT Transaction discarded: a configuration reload moved its keys, which now live on different backends (nothing of it ran)"),
            ExecAbortBecause(why) => write!(f, "EXECABORT Transaction discarded: {why}"),
            QueuedCommandLost => f.write_str("ERR internal error: a queued command"),
            ReplyMissing => f.write_str("ERR internal error: reply missing"),
            PartReplyMissing => f.write_str("ERR internal error: part reply missing"),
            BackendsDisagree => f.write_str("ERR backends answered differently"),
            KeysOverLimit { total, limit } => write!(
                f,
                "ERR KEYS would return {total} keys, more than keys_limit ({limit}); use SCAN"
            ),
            ScanCursorTooLarge => f.write_str("ERR SCAN cursor of a backend too large to combine"),
            UnexpectedReply(what) => write!(f, "ERR upstream sent an unexpected reply (expected {what})"),
            UnexpectedMgetReply => f.write_str("ERR upstream sent an unexpected reply to MGET"),
            NoSlotMapYet { cluster, why } => write!(
                f,
                "ERR cluster '{cluster}' has no slot map yet: {}",
                why.unwrap_or("no node has answered CLUSTER SLOTS yet")
            ),
            NoBackendToAsk => f.write_str("ERR no backend to ask: no route leads to a cluster"),
            FlushDisabled(name) => write!(
                f,
                "ERR {name} is disabled in keyway's configuration (proxy.allow_flush)"
            ),
            ConfigSubcommand(sub) => write!(
                f,
                "ERR CONFIG {sub} is not available through keyway (CONFIG GET is: it reads the first backend)"
            ),
            KeylessNotRoutable(name) => write!(
                f,
                "ERR '{name}' without keys cannot be routed: keyway routes by key"
            ),
            BlockingWithoutKeys(name) => write!(f, "ERR '{name}' without keys"),
            WaitInRedisCluster => f.write_str(
                "ERR WAIT is not available through keyway for redis_cluster clusters",
            ),
            UnblockedByReload => f.write_str("ERR keyway's configuration was reloaded while this command was blocked and its key now lives on another backend; nothing was taken: send the command again"),
            MoveFailed { key, why } => write!(f, "ERR keyway could not move key '{key}' to its new backend, so the command did not run: {why}"),
            ReshardHeld => f.write_str("TRYAGAIN keyway is switching this key's cluster to its new placement; send the command again"),
            NoRoute { what, name } => write!(f, "ERR no route for {what} '{name}'"),
            CannotPlaceYet {
                what,
                name,
                slot_unserved,
            } => {
                write!(f, "ERR cannot place {what} '{name}' yet: ")?;
                if *slot_unserved {
                    fmt::Display::fmt(&ClusterDown, f)
                } else {
                    f.write_str("no slot map yet")
                }
            }
            TransactionKeyElsewhere(key) => write!(
                f,
                "ERR key '{key}' lives on another backend than this transaction's earlier keys: keyway runs a transaction on one backend, so it is aborted and nothing of it will run"
            ),
            UpstreamTimeout => f.write_str("ERR upstream timeout"),
            UpstreamUnavailable(label) => write!(f, "ERR upstream unavailable ({label})"),
            UpstreamAuthFailed(label) => write!(f, "ERR upstream authentication failed ({label})"),
            UpstreamTlsFailed(label) => write!(f, "ERR upstream TLS handshake failed ({label})"),
            OutOfDescriptors => f.write_str("ERR keyway is out of file descriptors and cannot open an upstream connection (raise LimitNOFILE or lower max_clients)"),
            ProtectedMode => f.write_str("DENIED keyway is running in protected mode: protected_mode is on and proxy.password is not set, so only clients on the loopback interface are accepted. Set proxy.password, or protected_mode = false on a trusted network."),
            // Redis's cases are written by `redis_words`.
            redis => write!(f, "ERR {redis:?}"),
        }
    }
}

impl ErrorReply<'_> {
    /// Appends the reply as sent: `-TEXT\r\n`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        super::write::error(out, &self.to_string());
    }

    /// The reply as sent, on its own.
    pub fn frame(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// What follows `Protocol error: `, as Redis words it.
impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProtocolError::*;
        match *self {
            MultibulkCountTooLong => f.write_str("too big mbulk count string"),
            UnauthenticatedMultibulk => f.write_str("unauthenticated multibulk length"),
            InvalidMultibulk => f.write_str("invalid multibulk length"),
            ExpectedBulk(got) => write!(f, "expected '$', got '{}'", printable(got)),
            BulkCountTooLong => f.write_str("too big bulk count string"),
            UnauthenticatedBulk => f.write_str("unauthenticated bulk length"),
            InvalidBulk => f.write_str("invalid bulk length"),
            BulkNotEnded => f.write_str("expected CRLF after bulk data"),
            InlineTooBig => f.write_str("too big inline request"),
            UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
        }
    }
}

/// A byte as Redis shows it in a protocol error.
fn printable(c: u8) -> char {
    if c.is_ascii_graphic() || c == b' ' {
        c as char
    } else {
        '?'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_redis_words_where_redis_has_them() {
        assert_eq!(
            ErrorReply::WrongArity("get").to_string(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            ErrorReply::CrossSlot.to_string(),
            "CROSSSLOT Keys in request don't hash to the same slot"
        );
        assert_eq!(
            ErrorReply::MaxClients.frame(),
            b"-ERR max number of clients reached\r\n"
        );
        let code = |e: ErrorReply| e.to_string().split(' ').next().map(String::from);
        assert_eq!(code(ErrorReply::WrongPass).as_deref(), Some("WRONGPASS"));
        assert_eq!(code(ErrorReply::ProtectedMode).as_deref(), Some("DENIED"));
    }
}
