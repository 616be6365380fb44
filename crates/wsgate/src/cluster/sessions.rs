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

/// Appends to a session's list, if its state is still there, with the state's expiry.
fn append_script() -> Script {
    Script::new(
        r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
",
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
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], ARGV[2], 'EX', {MOVED_TTL_SECONDS})
return {{state, queue}}
"
    ))
}

/// Writes what sessions send, in the order they send it.
pub(super) async fn write(store: Store, keys: Keys, mut mirrors: UnboundedReceiver<Mirror>) {
    let append = append_script();
    while let Some(mirror) = mirrors.recv().await {
        let written = match mirror {
            Mirror::Keep(saved, window_ms) => {
                let (state, queue) = keys.session(saved.ctx.connection_id.as_str());
                let json = serde_json::to_string(&saved).unwrap_or_default();
                let set = redis::cmd("SET")
                    .arg(&state)
                    .arg(json)
                    .arg("PX")
                    .arg(window_ms.max(1))
                    .take();
                let clear = redis::cmd("DEL").arg(&queue).take();
                store.run_all(vec![clear, set]).await
            }
            Mirror::Append(id, envelope) => {
                let (state, queue) = keys.session(id.as_str());
                let mut invocation = append.key(&state);
                invocation.key(&queue).arg(envelope.as_str());
                store.invoke::<i64>(&invocation).await.map(drop)
            }
            Mirror::Forget(id) => {
                let (state, queue) = keys.session(id.as_str());
                store
                    .query::<()>(redis::cmd("DEL").arg(&state).arg(&queue))
                    .await
            }
        };
        if let Err(error) = written {
            warn!(%error, "a suspended session could not be written to the cluster's Redis");
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
        .arg(token)
        .arg(taker);
    let taken: Option<(String, Vec<String>)> = store.invoke(&invocation).await?;
    let Some((state, queue)) = taken else {
        return Ok(None);
    };
    let Ok(mut saved) = serde_json::from_str::<Saved>(&state) else {
        warn!(connection_id = %id, "a suspended session in the cluster's Redis is unreadable");
        return Ok(None);
    };
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
                if let Some(seq) = seq {
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
    let script = append_script();
    let mut invocation = script.key(&state);
    invocation.key(&queue).arg(entry);
    Ok(store.invoke::<i64>(&invocation).await? == 1)
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
