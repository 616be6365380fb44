//! The node's side of the bus: the messages its subscriptions push — requests from other nodes,
//! run on this node's hub in the order they arrive, and answers to this node's requests.

use std::sync::Arc;

use bytes::Bytes;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, warn};

use super::link::Link;
use super::wire::{self, Message};
use crate::ops::{self, Answer, Op};

/// Handles pushes until the connection to Redis is dropped for good.
pub(super) async fn listen(cluster: Arc<Link>, mut pushed: UnboundedReceiver<PushInfo>) {
    while let Some(push) = pushed.recv().await {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                if let Some(Value::BulkString(payload)) = push.data.into_iter().nth(1) {
                    on_message(&cluster, Bytes::from(payload));
                }
            }
            PushKind::Disconnection => {
                warn!("the connection to the cluster's Redis dropped; reconnecting");
                cluster.health.down();
            }
            PushKind::Subscribe | PushKind::SSubscribe => cluster.health.up(),
            _ => {}
        }
    }
}

fn on_message(cluster: &Arc<Link>, payload: Bytes) {
    match wire::decode(payload) {
        Some(Message::Request {
            from,
            number,
            op,
            data,
        }) => {
            // A node's own broadcast comes back to it; it ran its part already.
            if from == cluster.number() {
                return;
            }
            let channel = cluster.keys.channel(from);
            let store = cluster.store.clone();
            let me = cluster.number();
            // A session asked to go elsewhere answers itself: it is not on the hub's side.
            let released = match op {
                Op::Release { id, token } => {
                    // Calls for it that find it gone from here look for it there from now on.
                    let (link, release) = (cluster.clone(), (cluster.released)(id, token));
                    Some(async move {
                        let moved = super::sessions::moved(&link.store, &link.keys, &id, from);
                        if let Err(error) = moved.await {
                            warn!(connection_id = %id, %error, "a session was not let go: Redis failed");
                            return None;
                        }
                        release.await
                    })
                }
                // A POST to a session kept in Redis is written there before it is answered.
                op if writes_first(cluster, &op) => {
                    let (link, store, channel) = (cluster.clone(), store.clone(), channel.clone());
                    tokio::spawn(async move {
                        let answer = link.execute(&op, data).await;
                        answer_with(store, channel, me, number, answer);
                    });
                    None
                }
                op => {
                    let answer = ops::execute(&cluster.hub, &op, data);
                    answer_with(store.clone(), channel.clone(), me, number, answer);
                    None
                }
            };
            if let Some(released) = released {
                tokio::spawn(async move {
                    let answer = Answer::Released(released.await.map(Box::new));
                    answer_with(store, channel, me, number, answer);
                });
            }
        }
        Some(Message::Answer { number, answer, .. }) => cluster.pending.answer(number, answer),
        None => debug!("a message on the cluster bus was not understood"),
    }
}

fn answer_with(store: super::store::Store, channel: String, me: u8, number: u64, answer: Answer) {
    let message = wire::answer(me, number, &answer);
    tokio::spawn(async move {
        if let Err(error) = store.publish(&channel, message).await {
            debug!(%error, "an answer to another node was lost");
        }
    });
}

/// Whether `op` sends to a resumable session this node keeps in Redis.
fn writes_first(link: &Link, op: &Op) -> bool {
    let kept = |id| link.hub.get(id).is_some_and(|h| h.mirrored());
    match op {
        Op::Post { id } => kept(id),
        Op::Batch { ids, .. } => ids.iter().any(kept),
        _ => false,
    }
}
