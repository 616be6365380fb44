//! What a management call does to the connections of one node, and the same as a message between
//! nodes. The management API runs an [`Op`] on this node's hub when the connections are here,
//! and a cluster sends it to the node that holds them, which runs it with [`execute`] and
//! answers with an [`Answer`]: one code path whichever node a call lands on.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use wsgate_core::clock;
use wsgate_core::close::Close;
use wsgate_core::config::FanoutOverflow;
use wsgate_core::id::ConnectionId;

use crate::hub::{Command, Delivery, Hub, JoinError, PushError, SLOW_CONSUMER};

/// The connections a send to many addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Every connection.
    All,
    /// A group's members.
    Group(String),
    /// A user's connections.
    User(String),
}

/// One operation on a node's connections. Data to send travels beside it, not in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Send the data to one connection.
    Post {
        /// The connection.
        id: ConnectionId,
    },
    /// What `GET @connections/{id}` answers.
    Get {
        /// The connection.
        id: ConnectionId,
    },
    /// Close.
    Delete {
        /// The connection.
        id: ConnectionId,
        /// How (1000 "Connection Closed Normally" when a node of an older version asks).
        #[serde(default)]
        close: Close,
    },
    /// Join a group, unless in `max` groups already.
    Join {
        /// The connection.
        id: ConnectionId,
        /// The group.
        group: String,
        /// `limits.max_groups_per_connection` of the caller's node.
        max: usize,
    },
    /// Leave a group.
    Leave {
        /// The connection.
        id: ConnectionId,
        /// The group.
        group: String,
    },
    /// Send the data to each of these connections.
    Batch {
        /// The connections (all held by the node that runs it).
        ids: Vec<ConnectionId>,
        /// Close slow readers (else skip them).
        close_slow: bool,
    },
    /// Send the data to an audience, but not to `except`.
    FanOut {
        /// Who.
        to: Audience,
        /// Left out.
        except: Vec<ConnectionId>,
        /// Close slow readers (else skip them).
        close_slow: bool,
    },
    /// Close a user's connections.
    CloseUser {
        /// The user.
        user: String,
        /// How (1000 "Connection Closed Normally" when a node of an older version asks).
        #[serde(default)]
        close: Close,
    },
    /// Let a resumable session go to the asking node, where its client resumes with `token`
    /// (answered by the session itself, not on the hub: see `cluster::bus`).
    Release {
        /// The connection.
        id: ConnectionId,
        /// The resume token its client came with.
        token: String,
    },
    /// Up to `limit` connections after `after`, in id order, in `group` and of `user` when given.
    List {
        /// Only this group's members.
        group: Option<String>,
        /// Only this user's connections.
        user: Option<String>,
        /// Only connections from this source IP.
        #[serde(default)]
        ip: Option<String>,
        /// The last id of the previous page.
        after: Option<ConnectionId>,
        /// At most this many.
        limit: usize,
    },
}

/// What a node answers to an [`Op`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", content = "of", rename_all = "snake_case")]
pub enum Answer {
    /// Done.
    Ok,
    /// The connection is not live.
    Gone,
    /// The connection's outbox is full.
    Full,
    /// The connection is in this many groups already.
    TooMany {
        /// The bound.
        max: usize,
    },
    /// `GET @connections/{id}`'s body.
    Info(serde_json::Value),
    /// What a batch did.
    Batch(BatchResult),
    /// What a fan-out did.
    Delivered {
        /// Frames queued.
        recipients: usize,
        /// Left out (full outbox, `skip`).
        skipped: usize,
        /// Closed (full outbox, `close`).
        closed: usize,
    },
    /// How many connections were closed.
    Closed(usize),
    /// Listing items, in id order, with their ids.
    Items(Vec<(ConnectionId, serde_json::Value)>),
    /// The session let go, as it was; `None` when this node does not hold it (or the token
    /// is not its).
    Released(Option<Box<crate::saved::Saved>>),
}

/// The ids a batch sent to, found gone, and skipped (full outboxes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResult {
    /// Sent.
    pub sent: Vec<ConnectionId>,
    /// Not live.
    pub gone: Vec<ConnectionId>,
    /// Outbox full.
    pub skipped: Vec<ConnectionId>,
}

impl Answer {
    /// A [`Delivery`] as an answer.
    pub fn delivered(delivery: Delivery) -> Self {
        Self::Delivered {
            recipients: delivery.recipients,
            skipped: delivery.skipped,
            closed: delivery.closed,
        }
    }
}

/// The frame for `data`: text when it is UTF-8, else binary; the bytes are shared, not copied.
pub fn frame(data: Bytes) -> Command {
    match Utf8Bytes::try_from(data.clone()) {
        Ok(text) => Command::Text(text),
        Err(_) => Command::Binary(data),
    }
}

fn overflow(close_slow: bool) -> FanoutOverflow {
    if close_slow {
        FanoutOverflow::Close
    } else {
        FanoutOverflow::Skip
    }
}

/// Runs `op` on this node's connections, with `data` as the frame's payload.
pub fn execute(hub: &Hub, op: &Op, data: Bytes) -> Answer {
    match op {
        Op::Post { id } => match hub.get(id) {
            None => Answer::Gone,
            Some(session) => match session.outbox.push(frame(data)) {
                Ok(()) => Answer::Ok,
                Err(PushError::Full) => {
                    hub.overflows.refused.fetch_add(1, Ordering::Relaxed);
                    Answer::Full
                }
                Err(PushError::Closed) => Answer::Gone,
            },
        },
        Op::Get { id } => info(hub, id),
        // Removed at once, so a second DELETE or a POST right after gets 410.
        Op::Delete { id, close } => {
            if hub.close(id, close.clone()) {
                Answer::Ok
            } else {
                Answer::Gone
            }
        }
        Op::Join { id, group, max } => match hub.join_at_most(id, group, *max) {
            Ok(()) => Answer::Ok,
            Err(JoinError::Gone) => Answer::Gone,
            Err(JoinError::TooMany(max)) => Answer::TooMany { max },
        },
        Op::Leave { id, group } => {
            hub.leave(id, group);
            Answer::Ok
        }
        Op::Batch { ids, close_slow } => Answer::Batch(batch(hub, ids, &frame(data), *close_slow)),
        Op::FanOut {
            to,
            except,
            close_slow,
        } => Answer::delivered(fan_out(hub, to, except, &frame(data), *close_slow)),
        Op::CloseUser { user, close } => Answer::Closed(close_user(hub, user, close)),
        Op::Release { .. } => Answer::Released(None),
        Op::List {
            group,
            user,
            ip,
            after,
            limit,
        } => Answer::Items(list(
            hub,
            group.as_deref(),
            user.as_deref(),
            ip.as_deref(),
            (*after, *limit),
        )),
    }
}

fn info(hub: &Hub, id: &ConnectionId) -> Answer {
    hub.get(id).map_or(Answer::Gone, |session| {
        let ctx = &session.ctx;
        Answer::Info(serde_json::json!({
            "connectedAt": clock::iso8601(ctx.connected_at),
            "identity": { "sourceIp": ctx.source_ip, "userAgent": ctx.user_agent },
            "lastActiveAt": clock::iso8601(session.last_active_ms()),
        }))
    })
}

fn fan_out(
    hub: &Hub,
    to: &Audience,
    except: &[ConnectionId],
    command: &Command,
    close_slow: bool,
) -> Delivery {
    let overflow = overflow(close_slow);
    match to {
        Audience::All => hub.fan_out(None, command, except, overflow),
        Audience::Group(group) => {
            hub.fan_out(Some(&hub.group_members(group)), command, except, overflow)
        }
        Audience::User(user) => {
            hub.fan_out(Some(&hub.user_connections(user)), command, except, overflow)
        }
    }
}

fn batch(hub: &Hub, ids: &[ConnectionId], frame: &Command, close_slow: bool) -> BatchResult {
    let mut result = BatchResult::default();
    for id in ids {
        let Some(session) = hub.get(id) else {
            result.gone.push(*id);
            continue;
        };
        match session.outbox.push(frame.clone()) {
            Ok(()) => result.sent.push(*id),
            Err(PushError::Closed) => result.gone.push(*id),
            Err(PushError::Full) => {
                let counter = match close_slow {
                    true => &hub.overflows.closed,
                    false => &hub.overflows.skipped,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if close_slow {
                    session.outbox.close_now(1008, SLOW_CONSUMER);
                }
                result.skipped.push(*id);
            }
        }
    }
    result
}

fn close_user(hub: &Hub, user: &str, close: &Close) -> usize {
    // Removed at once, like DELETE @connections/{id}: a POST right after gets 410.
    hub.user_connections(user)
        .iter()
        .filter(|id| hub.close(id, close.clone()))
        .count()
}

fn list(
    hub: &Hub,
    group: Option<&str>,
    user: Option<&str>,
    ip: Option<&str>,
    (after, limit): (Option<ConnectionId>, usize),
) -> Vec<(ConnectionId, serde_json::Value)> {
    let mut ids = match group {
        Some(group) => hub.group_members(group),
        None => hub.ids(),
    };
    if let Some(user) = user {
        let of_user = hub.user_connections(user);
        ids.retain(|id| of_user.contains(id));
    }
    ids.sort_unstable();
    let start = after.map_or(0, |after| ids.partition_point(|id| *id <= after));
    let mut items = Vec::with_capacity(limit.min(ids.len() - start));
    for id in &ids[start..] {
        if items.len() == limit {
            break;
        }
        // A connection may close between the index read and here: it is simply left out.
        let Some(session) = hub.get(id) else {
            continue;
        };
        let ctx = &session.ctx;
        if ip.is_some_and(|ip| ip != ctx.source_ip) {
            continue;
        }
        let membership = session.membership();
        items.push((
            *id,
            serde_json::json!({
                "connectionId": id.to_string(),
                "connectedAt": clock::iso8601(ctx.connected_at),
                "identity": {"sourceIp": ctx.source_ip, "userAgent": ctx.user_agent},
                "lastActiveAt": clock::iso8601(session.last_active_ms()),
                "groups": membership.groups.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
                "user": membership.user.as_deref(),
                "authorizer": ctx.authorizer,
            }),
        ));
    }
    items
}
