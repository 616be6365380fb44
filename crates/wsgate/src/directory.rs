//! Where the management API finds connections: on this node's hub, and — in a cluster — on the
//! other nodes, asked over Redis. On one node every call runs on the hub directly, as it always
//! did; in a cluster, a call for a connection held here does too, and only a call that needs
//! another node pays for Redis.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use wsgate_core::close::Close;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use crate::cluster::{Cluster, Holders};
use crate::hub::{Delivery, Hub};
use crate::ops::{self, Answer, Audience, BatchResult, Op};

/// This node's connections, and the cluster's when there is one.
#[derive(Debug)]
pub struct Directory {
    hub: Arc<Hub>,
    cluster: Option<Arc<Cluster>>,
}

/// The operations that address one connection.
#[derive(Debug, Clone)]
pub enum One {
    /// Send the data.
    Post,
    /// Describe it.
    Get,
    /// Close it so.
    Delete(Close),
    /// Join a group (at most `max`).
    Join(String, usize),
    /// Leave a group.
    Leave(String),
}

fn unexpected(answer: &Answer) -> MgmtError {
    MgmtError::ServiceUnavailable(format!("another node answered {answer:?}"))
}

impl Directory {
    /// One node, or a node of `cluster`.
    pub fn new(hub: Arc<Hub>, cluster: Option<Arc<Cluster>>) -> Self {
        Self { hub, cluster }
    }

    /// This node's connections.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The cluster, when there is one.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// The number new connection ids carry: this node's in a cluster, else 0.
    pub fn node(&self) -> u8 {
        self.cluster.as_ref().map_or(0, |c| c.number())
    }

    /// The cluster, when `id` is held by another node: its id names another, and it was not
    /// taken over by this one (a resume).
    fn elsewhere(&self, id: &ConnectionId) -> Option<&Cluster> {
        self.cluster
            .as_deref()
            .filter(|cluster| id.node() != cluster.number() && self.hub.get(id).is_none())
    }

    /// Runs `what` on connection `id`, wherever it is; `data` is a POST's payload.
    pub async fn one(&self, id: ConnectionId, what: One, data: Bytes) -> Result<Answer, MgmtError> {
        let op = match what {
            One::Post => Op::Post { id },
            One::Get => Op::Get { id },
            One::Delete(close) => Op::Delete { id, close },
            One::Join(group, max) => Op::Join { id, group, max },
            One::Leave(group) => Op::Leave { id, group },
        };
        let Some(cluster) = &self.cluster else {
            return Ok(ops::execute(&self.hub, &op, data));
        };
        let answer = match self.elsewhere(&id) {
            None => cluster.execute_here(&op, data.clone()).await,
            Some(_) => {
                cluster.available()?;
                cluster
                    .call(id.node(), &op, &data)
                    .await?
                    .unwrap_or(Answer::Gone)
            }
        };
        match answer {
            // Taken over by another node, or suspended with its node dead.
            Answer::Gone if cluster.available().is_ok() => cluster.after_gone(id, &op, &data).await,
            answer => Ok(answer),
        }
    }

    /// Sends `data` to each of `ids`, each held wherever it is.
    pub async fn batch(
        &self,
        ids: Vec<ConnectionId>,
        data: Bytes,
        close_slow: bool,
    ) -> Result<BatchResult, MgmtError> {
        let mut here = Vec::new();
        let mut by_node: std::collections::BTreeMap<u8, Vec<ConnectionId>> = Default::default();
        for id in ids {
            match self.elsewhere(&id) {
                Some(_) => by_node.entry(id.node()).or_default().push(id),
                None => here.push(id),
            }
        }
        let mut result = BatchResult::default();
        let mut merge = |answer: Answer| match answer {
            Answer::Batch(part) => {
                result.sent.extend(part.sent);
                result.gone.extend(part.gone);
                result.skipped.extend(part.skipped);
                Ok(())
            }
            other => Err(unexpected(&other)),
        };
        let batch = |ids: Vec<ConnectionId>| Op::Batch { ids, close_slow };
        if let (Some(cluster), false) = (&self.cluster, by_node.is_empty()) {
            cluster.available()?;
        }
        if !here.is_empty() {
            let op = batch(here);
            merge(match &self.cluster {
                Some(cluster) => cluster.execute_here(&op, data.clone()).await,
                None => ops::execute(&self.hub, &op, data.clone()),
            })?;
        }
        let Some(cluster) = &self.cluster else {
            return Ok(result);
        };
        let calls = by_node.into_iter().map(|(node, ids)| {
            let op = batch(ids.clone());
            let data = data.clone();
            async move {
                let answer = cluster.call(node, &op, &data).await?;
                // No node has that number: none of its connections is live.
                Ok::<_, MgmtError>(answer.unwrap_or(Answer::Batch(BatchResult {
                    gone: ids,
                    ..BatchResult::default()
                })))
            }
        });
        for answer in futures_util::future::join_all(calls).await {
            merge(answer?)?;
        }
        // Those taken over by another node, or suspended with their node dead.
        for id in std::mem::take(&mut result.gone) {
            match cluster.after_gone(id, &Op::Post { id }, &data).await? {
                Answer::Ok => result.sent.push(id),
                Answer::Full => result.skipped.push(id),
                _ => result.gone.push(id),
            }
        }
        Ok(result)
    }

    /// Sends `data` to `to` on every node that holds any of them, but not to `except`.
    pub async fn fan_out(
        &self,
        to: Audience,
        except: Vec<ConnectionId>,
        data: Bytes,
        close_slow: bool,
    ) -> Result<Delivery, MgmtError> {
        let op = Op::FanOut {
            to,
            except,
            close_slow,
        };
        let mut delivery = Delivery::default();
        for answer in self.everywhere(&op, data).await? {
            match answer {
                Answer::Delivered {
                    recipients,
                    skipped,
                    closed,
                } => {
                    delivery.recipients += recipients;
                    delivery.skipped += skipped;
                    delivery.closed += closed;
                }
                other => return Err(unexpected(&other)),
            }
        }
        Ok(delivery)
    }

    /// Runs `op` here and on the other nodes it concerns; with Redis known down, a 503 before
    /// anything runs (a send to many then reaches nobody rather than this node's connections).
    async fn everywhere(&self, op: &Op, data: Bytes) -> Result<Vec<Answer>, MgmtError> {
        let Some(cluster) = &self.cluster else {
            return Ok(vec![ops::execute(&self.hub, op, data)]);
        };
        cluster.available()?;
        let mut answers = vec![ops::execute(&self.hub, op, data.clone())];
        answers.extend(self.on_others(cluster, op, &data).await?);
        Ok(answers)
    }

    /// Runs `op` on the other nodes it concerns: a group's or user's holders, else all.
    async fn on_others(
        &self,
        cluster: &Cluster,
        op: &Op,
        data: &[u8],
    ) -> Result<Vec<Answer>, MgmtError> {
        let holders = match op {
            Op::FanOut {
                to: Audience::Group(group),
                ..
            } => Some(Holders::Group(group)),
            Op::FanOut {
                to: Audience::User(user),
                ..
            }
            | Op::CloseUser { user, .. } => Some(Holders::User(user)),
            Op::List {
                group: Some(group), ..
            } => Some(Holders::Group(group)),
            Op::List {
                user: Some(user), ..
            } => Some(Holders::User(user)),
            _ => None,
        };
        match holders {
            Some(holders) => {
                let nodes = cluster.holders(holders).await?;
                if nodes.is_empty() {
                    return Ok(Vec::new());
                }
                cluster.call_each(&nodes, op, data).await
            }
            None => cluster.call_all(op, data).await,
        }
    }

    /// Closes `user`'s connections on every node, as `close` says; how many.
    pub async fn close_user(&self, user: &str, close: Close) -> Result<usize, MgmtError> {
        let op = Op::CloseUser {
            user: user.to_owned(),
            close,
        };
        let answers = self.everywhere(&op, Bytes::new()).await?;
        answers.into_iter().try_fold(0, |sum, answer| match answer {
            Answer::Closed(n) => Ok(sum + n),
            other => Err(unexpected(&other)),
        })
    }

    /// Up to `limit` live connections after `after` in id order, in `group`, of `user` and from
    /// `ip` when given, from every node; and whether more follow.
    pub async fn list(
        &self,
        group: Option<String>,
        user: Option<String>,
        ip: Option<String>,
        (after, limit): (Option<ConnectionId>, usize),
    ) -> Result<(Vec<Value>, bool), MgmtError> {
        // One more than asked tells whether another page follows.
        let op = Op::List {
            group,
            user,
            ip,
            after,
            limit: limit + 1,
        };
        let mut items = Vec::new();
        for answer in self.everywhere(&op, Bytes::new()).await? {
            match answer {
                Answer::Items(part) => items.extend(part),
                other => return Err(unexpected(&other)),
            }
        }
        items.sort_unstable_by_key(|(id, _)| *id);
        let more = items.len() > limit;
        items.truncate(limit);
        Ok((items.into_iter().map(|(_, item)| item).collect(), more))
    }
}
