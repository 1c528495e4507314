//! From a scanned request to the way it executes: the command table's
//! entry, arity, AUTH and pub/sub-mode checks, a transaction's queue, and
//! then one verb per way (forward or split: `plan`; local, fan-out,
//! transaction, blocking, pub/sub: their files). CLIENT REPLY's muting is
//! applied here.

use super::{blocking, fanout, local, plan, pubsub, reshard, transaction};
use super::{Client, CoreContext, ReplyMode};
use crate::command::{lookup, CommandSpec, Exec, Fan, Local, Split};
use crate::resp::errors::ErrorReply;
use crate::resp::request::Request;
use crate::resp::write::{quoted, Protocol};
use crate::stats::{ErrorKind, Group};

/// Executes one request: `frame` is its RESP encoding, `args` index into
/// it. Under CLIENT REPLY OFF or SKIP the command runs and its reply is
/// dropped (CLIENT REPLY itself sets `reply_mode_set` and mutes its own).
/// False when the request must wait for the batch's earlier replies (see
/// `own_connection`): nothing of it ran.
pub fn dispatch(ctx: &CoreContext, client: &mut Client, req: Request<'_>) -> bool {
    let mode = client.reply_mode;
    if mode == ReplyMode::On {
        return try_execute(ctx, client, req);
    }
    let from = client.replies.borrow().len();
    client.reply_mode_set = false;
    if !try_execute(ctx, client, req) {
        return false;
    }
    if client.reply_mode_set {
        return true;
    }
    client.replies.borrow_mut().mute_from(from);
    if mode == ReplyMode::Skip {
        client.reply_mode = ReplyMode::On;
    }
    true
}

/// Blocking commands and WAIT go over a connection of their own: sent
/// while earlier requests of the batch are still out on the shared
/// connections, they could reach the backend first (BLPOP before the RPUSH
/// it should pop, WAIT before the write it waits for). They start once the
/// earlier replies are in.
fn own_connection(spec: &CommandSpec) -> bool {
    matches!(spec.exec, Exec::Blocking(_) | Exec::Fanout(Fan::Wait))
}

fn try_execute(ctx: &CoreContext, client: &mut Client, req: Request<'_>) -> bool {
    let spec = lookup(req.arg(0));
    if let Some(s) = spec {
        if own_connection(s) && client.tx.is_none() && client.replies.borrow().outstanding() > 0 {
            return false;
        }
        // Keys of a cluster being resharded are moved before anything
        // touches them (by clients that may run commands at all).
        if ctx.resharding && client.authenticated && s.arity_ok(req.argc()) {
            match reshard::check(ctx, client, req, s) {
                reshard::Check::Run => {}
                reshard::Check::Wait => return false,
                reshard::Check::Answered => return true,
            }
        }
    }
    run_command(ctx, client, req, spec);
    true
}

fn run_command(
    ctx: &CoreContext,
    client: &mut Client,
    req: Request<'_>,
    spec: Option<&'static CommandSpec>,
) {
    let args = req.args;
    ctx.stats.command(spec);
    if let Some(spec) = spec {
        client.me.entry.cmd.set(Some(spec));
    }
    let group = match spec.map(|s| (s.exec, s.write)) {
        Some((Exec::Forward, false)) => Group::Read,
        Some((Exec::Forward, true)) => Group::Write,
        Some((Exec::Split(_), _)) => Group::Multi,
        _ => Group::Other,
    };
    client.groups[group as usize] += 1;
    let Some(spec) = spec else {
        client.fail(ErrorKind::UnknownCommand, &unknown_command(req));
        transaction::doom(client);
        return;
    };
    if !spec.arity_ok(args.len()) {
        client.fail(
            ErrorKind::WrongArity,
            &ErrorReply::WrongArity(spec.name).to_string(),
        );
        transaction::doom(client);
        return;
    }
    if !client.authenticated
        && !matches!(
            spec.exec,
            Exec::Local(Local::Auth | Local::Hello | Local::Quit | Local::Reset)
        )
    {
        client.refuse_as(ErrorKind::Auth, ErrorReply::NoAuth);
        return;
    }
    if client.pubsub.is_some()
        && client.proto == Protocol::Resp2
        && !pubsub::allowed_when_subscribed(spec.name)
    {
        return client.refuse(ErrorReply::SubscribedContext(spec.name));
    }
    if client.tx.is_some() && spec.exec != Exec::Transaction {
        return transaction::queue(ctx, client, req, spec);
    }
    match spec.exec {
        Exec::Local(l) => local::execute(l, ctx, client, req),
        Exec::Fanout(fan) => fanout::execute(ctx, client, req, fan),
        Exec::Transaction => transaction::execute(ctx, client, req, spec),
        Exec::Blocking(block) => blocking::execute(ctx, client, req, spec, block),
        Exec::PubSub => pubsub::execute(ctx, client, req, spec.name),
        Exec::Unsupported => {
            client.fail(
                ErrorKind::Unsupported,
                &ErrorReply::Unsupported(&quoted(req.arg(0), 128)).to_string(),
            );
        }
        Exec::Forward => plan::execute(ctx, client, req, spec, None),
        Exec::Split(kind) => {
            if kind == Split::Mset && args.len().is_multiple_of(2) {
                client.fail(
                    ErrorKind::WrongArity,
                    &ErrorReply::WrongArity(spec.name).to_string(),
                );
                return;
            }
            plan::execute(ctx, client, req, spec, Some(kind));
        }
    }
}

/// Redis's words for a command it does not know.
fn unknown_command(req: Request<'_>) -> String {
    let args = req.args;
    let arg = |i: usize| req.arg(i);
    let mut shown = String::new();
    for i in 1..args.len() {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        shown.push('\'');
        shown.push_str(&quoted(arg(i), room));
        shown.push_str("' ");
    }
    let name = quoted(arg(0), 128);
    ErrorReply::UnknownCommand {
        name: &name,
        args: &shown,
    }
    .to_string()
}
