//! Resumable sessions across nodes. A session whose socket is lost is written to Redis as it is
//! (its state, then each message kept for it), so that its client can resume on any node:
//!
//! - on a node that does not hold it, a resume asks the holder to let it go (it answers with the
//!   session, taken out of its hub without `$disconnect`), and the session goes on there;
//! - when the holder is dead, the session is taken from Redis instead — by the node the client
//!   resumes on, or by the survivor that reaps the dead node, which then waits for the resume;
//! - a connection taken over this way keeps its id, whose first byte still names the node it
//!   started on: a key names the node that holds it now, read when that node answers "gone" or
//!   is dead; and a POST to a suspended session whose node died before a survivor took it is kept
//!   in Redis with it.
//!
//! Per suspended session: one string (its state, as JSON) and one list (the messages kept since),
//! both expiring with its resume window; nothing for a live one.

use redis::Script;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::warn;
use wsgate_core::id::ConnectionId;

use super::store::{Keys, Store};
use crate::hub::Command;
use crate::resume::Mirror;
use crate::saved::Saved;

/// Lets a resumable session go to another node, where its client resumes with the token: the
/// session as it was, out of this node's hub without `$disconnect`; `None` when this node does
/// not hold it or the token is not its.
pub type Released = std::sync::Arc<
    dyn Fn(ConnectionId, String) -> futures_util::future::BoxFuture<'static, Option<Saved>>
        + Send
        + Sync,
>;

/// A suspended session taken from another node, or from Redis, and the messages posted to it
/// after its node died (they are sent once it goes on).
pub type Taken = (Saved, Vec<Command>);

/// How long the key that names a taken-over connection's node lives (at least as long as a
/// connection can: its entry is read only when the node its id names does not hold it).
const MOVED_TTL_SECONDS: u64 = 48 * 3600;

/// The most messages kept in Redis for one session (past them the oldest go, and a resume that
/// needs them fails, as past `limits.resume_buffer_bytes` on one node).
const MAX_KEPT: i64 = 65_536;

/// A script that pushes `ARGV[1]` onto the list `KEYS[2]` of a session whose state `KEYS[1]` is
/// still there, with the state's expiry (at most [`MAX_KEPT`] entries), then runs `then`.
fn push_script(then: &str) -> String {
    format!(
        r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -{MAX_KEPT}, -1)
redis.call('PEXPIRE', KEYS[2], ttl)
{then}
return 1
"
    )
}

/// Appends a numbered message to a session's list; the copy a POST wrote down of it (`KEYS[3]`,
/// `ARGV[2]`) goes.
static APPEND_LUA: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    push_script("if ARGV[2] ~= '' then redis.call('LREM', KEYS[3], 1, ARGV[2]) end")
});

/// Writes down a message POSTed to a session, before the POST is answered.
static POSTED_LUA: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| push_script(""));

/// Drops the messages up to an acknowledged `seq` from the head of a session's list.
const ACK_LUA: &str = r#"
local acked = tonumber(ARGV[1])
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then return 0 end
  local seq = tonumber(string.match(head, '"seq":(%d+)'))
  if seq == nil or seq > acked then return 0 end
  redis.call('LPOP', KEYS[1])
end
"#;

/// Writes a session's groups and user beside its state, if it is kept, with the state's expiry.
const MEMBER_LUA: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
return 1
";

/// A connection's groups and user, as kept beside its state.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Member {
    groups: Vec<String>,
    user: Option<String>,
}

/// The command that writes `id`'s groups and user beside its state, if it is kept (a resumable
/// session: what a node that takes it over after this one died gives it back).
pub(super) fn member(
    keys: &Keys,
    id: &ConnectionId,
    groups: Vec<String>,
    user: Option<String>,
) -> redis::Cmd {
    let (state, _) = keys.session(id.as_str());
    let json = serde_json::to_string(&Member { groups, user }).unwrap_or_default();
    eval(
        MEMBER_LUA,
        &[&state, &keys.member(id.as_str())],
        &[json.as_bytes()],
    )
}

/// Takes a session's state and list out of Redis, at once, and records the taker as its node:
/// one taker only, and only with the session's token (any, when the token given is empty: a
/// survivor reaping its node).
fn take_script() -> Script {
    Script::new(&format!(
        r"
local state = redis.call('GET', KEYS[1])
if not state then return false end
if ARGV[1] ~= '' and cjson.decode(state).token ~= ARGV[1] then return false end
local queue = redis.call('LRANGE', KEYS[2], 0, -1)
local member = redis.call('GET', KEYS[4]) or ''
local posted = redis.call('LRANGE', KEYS[5], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4], KEYS[5])
redis.call('SET', KEYS[3], ARGV[2], 'EX', {MOVED_TTL_SECONDS})
return {{state, queue, member, posted}}
"
    ))
}

/// How many queued writes go to Redis in one round trip.
const BATCH: usize = 512;

/// Writes what sessions send, in the order they send it, many at a time.
pub(super) async fn write(store: Store, keys: Keys, mut mirrors: UnboundedReceiver<Mirror>) {
    let mut batch = Vec::with_capacity(BATCH);
    while mirrors.recv_many(&mut batch, BATCH).await > 0 {
        let cmds = batch
            .drain(..)
            .flat_map(|mirror| commands(&keys, mirror))
            .collect();
        if let Err(error) = store.run_all(cmds).await {
            warn!(%error, "a resumable session could not be written to the cluster's Redis");
        }
    }
}

/// A script's run as a command, to go in a batch.
fn eval(script: &str, keys: &[&str], args: &[&[u8]]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    for arg in args {
        cmd.arg(*arg);
    }
    cmd
}

/// The commands that write `mirror`.
fn commands(keys: &Keys, mirror: Mirror) -> Vec<redis::Cmd> {
    match mirror {
        Mirror::Keep(saved, ttl_ms) | Mirror::KeepLive(saved, ttl_ms) => {
            let id = saved.ctx.connection_id;
            let (state, queue) = keys.session(id.as_str());
            let json = serde_json::to_string(&saved).unwrap_or_default();
            // The state says all: what was kept since, and the groups and user, go.
            let clear = redis::cmd("DEL")
                .arg(&queue)
                .arg(keys.member(id.as_str()))
                .take();
            let set = redis::cmd("SET")
                .arg(&state)
                .arg(json)
                .arg("PX")
                .arg(ttl_ms.max(1))
                .take();
            vec![clear, set]
        }
        Mirror::Append(id, envelope, raw) => {
            let (state, queue) = keys.session(id.as_str());
            let posted = keys.posted(id.as_str());
            vec![eval(
                &APPEND_LUA,
                &[&state, &queue, &posted],
                &[envelope.as_bytes(), &raw],
            )]
        }
        Mirror::Ack(id, seq) => {
            let (_, queue) = keys.session(id.as_str());
            vec![eval(ACK_LUA, &[&queue], &[seq.to_string().as_bytes()])]
        }
        Mirror::Forget(id) => {
            let (state, queue) = keys.session(id.as_str());
            vec![
                redis::cmd("DEL")
                    .arg(&state)
                    .arg(&queue)
                    .arg(keys.member(id.as_str()))
                    .arg(keys.posted(id.as_str()))
                    .take(),
            ]
        }
    }
}

/// Takes a session out of Redis for node `taker`: its state, the messages kept since (numbered
/// into it), and the messages posted after its node died (to send it once it goes on). `None`
/// when it is not there (it resumed, ended, or another node took it first).
pub(super) async fn take(
    store: &Store,
    keys: &Keys,
    id: &ConnectionId,
    token: &str,
    taker: u8,
) -> redis::RedisResult<Option<(Saved, Vec<Command>)>> {
    let (state, queue) = keys.session(id.as_str());
    let script = take_script();
    let mut invocation = script.key(&state);
    invocation
        .key(&queue)
        .key(keys.moved(id.as_str()))
        .key(keys.member(id.as_str()))
        .key(keys.posted(id.as_str()))
        .arg(token)
        .arg(taker);
    type Raw = (String, Vec<String>, String, Vec<Vec<u8>>);
    let taken: Option<Raw> = store.invoke(&invocation).await?;
    let Some((state, queue, member, posted)) = taken else {
        return Ok(None);
    };
    let Ok(mut saved) = serde_json::from_str::<Saved>(&state) else {
        warn!(connection_id = %id, "a suspended session in the cluster's Redis is unreadable");
        return Ok(None);
    };
    // Kept while live: its window starts now, when its node is found dead.
    if saved.suspended_at_ms == 0 {
        saved.suspended_at_ms = wsgate_core::clock::now_ms();
    }
    if let Ok(member) = serde_json::from_str::<Member>(&member) {
        (saved.groups, saved.user) = (member.groups, member.user);
    }
    for entry in queue {
        let seq = serde_json::from_str::<serde_json::Value>(&entry)
            .ok()
            .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64));
        if let Some(seq) = seq.filter(|s| saved.kept.last().is_none_or(|(last, _)| s > last)) {
            saved.last_seq = saved.last_seq.max(seq);
            saved.kept.push((seq, entry));
        }
    }
    // POSTed, answered 200, and not numbered by the session before its node died.
    let late = posted
        .into_iter()
        .map(|data| match String::from_utf8(data) {
            Ok(text) => Command::Text(text.into()),
            Err(data) => Command::Binary(data.into_bytes().into()),
        })
        .collect();
    Ok(Some((saved, late)))
}

/// Writes down a message POSTed to a kept session, before the POST is answered: `true` when the
/// session is kept (its node may be this one, or a dead one).
pub(super) async fn post(
    store: &Store,
    keys: &Keys,
    ids: &[ConnectionId],
    data: &[u8],
) -> redis::RedisResult<Vec<bool>> {
    let cmds = ids
        .iter()
        .map(|id| {
            let (state, _) = keys.session(id.as_str());
            eval(&POSTED_LUA, &[&state, &keys.posted(id.as_str())], &[data])
        })
        .collect();
    store
        .query_all::<i64>(cmds)
        .await
        .map(|written| written.into_iter().map(|w| w == 1).collect())
}

/// Takes back what [`post`] wrote down for a message that was not queued after all.
pub(super) async fn unpost(
    store: &Store,
    keys: &Keys,
    ids: &[ConnectionId],
    data: &[u8],
) -> redis::RedisResult<()> {
    let cmds = ids
        .iter()
        .map(|id| {
            redis::cmd("LREM")
                .arg(keys.posted(id.as_str()))
                .arg(-1)
                .arg(data)
                .take()
        })
        .collect();
    store.run_all(cmds).await
}

/// Whether a suspended session of this id is in Redis.
pub(super) async fn suspended(
    store: &Store,
    keys: &Keys,
    id: &ConnectionId,
) -> redis::RedisResult<bool> {
    let (state, _) = keys.session(id.as_str());
    Ok(store.query::<i64>(redis::cmd("EXISTS").arg(state)).await? == 1)
}

/// Records that node `number` holds `id` now.
pub(super) async fn moved(
    store: &Store,
    keys: &Keys,
    id: &ConnectionId,
    number: u8,
) -> redis::RedisResult<()> {
    store
        .query(
            redis::cmd("SET")
                .arg(keys.moved(id.as_str()))
                .arg(number)
                .arg("EX")
                .arg(MOVED_TTL_SECONDS),
        )
        .await
}

/// The node that holds `id` now, if it was taken over.
pub(super) async fn holder(
    store: &Store,
    keys: &Keys,
    id: &ConnectionId,
) -> redis::RedisResult<Option<u8>> {
    store
        .query(redis::cmd("GET").arg(keys.moved(id.as_str())))
        .await
}
