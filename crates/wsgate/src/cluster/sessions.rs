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

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
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

/// A message kept in Redis for a session whose node died before a survivor took it: marked so,
/// and numbered when the session is taken.
const LATE: char = '\u{0}';

/// The most messages kept in Redis for one session (past them the oldest go, and a resume that
/// needs them fails, as past `limits.resume_buffer_bytes` on one node).
const MAX_KEPT: i64 = 65_536;

/// Appends to a session's list, if its state is still there, with the state's expiry.
static APPEND_LUA: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -{MAX_KEPT}, -1)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"
    )
});

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
    eval(MEMBER_LUA, &[&state, &keys.member(id.as_str())], &[&json])
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
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('SET', KEYS[3], ARGV[2], 'EX', {MOVED_TTL_SECONDS})
return {{state, queue, member}}
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
fn eval(script: &str, keys: &[&str], args: &[&str]) -> redis::Cmd {
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
        Mirror::Append(id, envelope) => {
            let (state, queue) = keys.session(id.as_str());
            vec![eval(&APPEND_LUA, &[&state, &queue], &[envelope.as_str()])]
        }
        Mirror::Ack(id, seq) => {
            let (_, queue) = keys.session(id.as_str());
            vec![eval(ACK_LUA, &[&queue], &[&seq.to_string()])]
        }
        Mirror::Forget(id) => {
            let (state, queue) = keys.session(id.as_str());
            vec![
                redis::cmd("DEL")
                    .arg(&state)
                    .arg(&queue)
                    .arg(keys.member(id.as_str()))
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
        .arg(token)
        .arg(taker);
    let taken: Option<(String, Vec<String>, String)> = store.invoke(&invocation).await?;
    let Some((state, queue, member)) = taken else {
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
    let mut late = Vec::new();
    for entry in queue {
        match entry.strip_prefix(LATE) {
            Some(text) if text.starts_with('T') => {
                late.push(Command::Text(text[1..].to_owned().into()))
            }
            Some(data) => {
                if let Ok(bytes) = STANDARD.decode(data.get(1..).unwrap_or_default()) {
                    late.push(Command::Binary(bytes.into()));
                }
            }
            None => {
                let seq = serde_json::from_str::<serde_json::Value>(&entry)
                    .ok()
                    .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64));
                if let Some(seq) =
                    seq.filter(|s| saved.kept.last().is_none_or(|(last, _)| s > last))
                {
                    saved.last_seq = saved.last_seq.max(seq);
                    saved.kept.push((seq, entry));
                }
            }
        }
    }
    Ok(Some((saved, late)))
}

/// Keeps a POST for a suspended session whose node died: `true` when the session is in Redis.
pub(super) async fn keep_late(
    store: &Store,
    keys: &Keys,
    id: &ConnectionId,
    data: &[u8],
) -> redis::RedisResult<bool> {
    let (state, queue) = keys.session(id.as_str());
    let entry = match std::str::from_utf8(data) {
        Ok(text) => format!("{LATE}T{text}"),
        Err(_) => format!("{LATE}B{}", STANDARD.encode(data)),
    };
    let append = eval(&APPEND_LUA, &[&state, &queue], &[&entry]);
    Ok(store.query::<i64>(&append).await? == 1)
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
