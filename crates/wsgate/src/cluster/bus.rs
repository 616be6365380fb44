//! The node's side of the bus: the messages its subscriptions push — requests from other nodes,
//! run on this node's hub in the order they arrive, and answers to this node's requests.

use std::sync::Arc;

use bytes::Bytes;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, warn};

use super::link::Link;
use super::wire::{self, Message};
use crate::ops;

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
            let answer = ops::execute(&cluster.hub, &op, data);
            let message = wire::answer(cluster.number(), number, &answer);
            let channel = cluster.keys.channel(from);
            let store = cluster.store.clone();
            tokio::spawn(async move {
                if let Err(error) = store.publish(&channel, message).await {
                    debug!(%error, "an answer to another node was lost");
                }
            });
        }
        Some(Message::Answer { number, answer, .. }) => cluster.pending.answer(number, answer),
        None => debug!("a message on the cluster bus was not understood"),
    }
}
