//! The sending side: numbered `POST @connections/{id}`, one at a time per connection (its next
//! number only once the previous POST was answered, so the order they must arrive in is
//! defined), retried as boto3 retries: on 429, 500, 502, 503 and 504 and on a connection error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};

use super::inbox::body;
use crate::scenario::bounded;

/// The statuses boto3's retry handlers retry (throttling and transient server errors).
const RETRIED: [u16; 5] = [429, 500, 502, 503, 504];
/// The first wait before a retry; it doubles up to [`LAST_BACKOFF`]. Shorter than boto3's (it
/// waits up to a second and more) so that the figures show the gateway's stall, not the client's.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const LAST_BACKOFF: Duration = Duration::from_millis(200);
/// How often the pacer wakes; each time it sends what the rate says is due since the start.
const TICK: Duration = Duration::from_millis(5);
/// One attempt's bound: reqwest has none by default, and a gateway that stops answering must not
/// hold a POST for the whole run.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// When a POST was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// By the pacer, at the steady rate, around the upgrade.
    Steady,
    /// Afterwards, one to every connection.
    Sweep,
}

/// How a POST ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 200, after retries or not.
    Delivered,
    /// Answered a status that is not retried: the gateway says it did not deliver it.
    Refused(u16),
    /// Still retried when the retry time (or the scenario's deadline) ran out.
    GaveUp,
}

/// One numbered message and what its POST went through.
#[derive(Debug, Clone)]
pub struct Post {
    pub conn: usize,
    pub seq: u64,
    pub phase: Phase,
    /// When the first attempt was sent.
    pub first_sent: Instant,
    /// From the first attempt to the last answer.
    pub took: Duration,
    pub outcome: Outcome,
    /// The retried statuses, one per retry they caused.
    pub retried_statuses: Vec<u16>,
    /// Attempts that got no answer (refused, reset, timed out): each was retried.
    pub connection_errors: u32,
}

impl Post {
    /// Attempts that were retried.
    pub fn retries(&self) -> usize {
        self.retried_statuses.len() + self.connection_errors as usize
    }
}

/// What the pacer did with the POSTs its rate made due.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pacing {
    /// POSTs the rate made due.
    pub due: usize,
    /// … sent.
    pub sent: usize,
    /// … not sent: their connection still had a POST being retried.
    pub busy: usize,
    /// … not sent: the cap on POSTs in flight was reached.
    pub capped: usize,
    /// The most POSTs in flight at once, as the pacer saw it.
    pub max_in_flight: usize,
    /// How long the pacer ran.
    pub wall: Duration,
}

/// The first connection error and the first refusal, for the report.
#[derive(Debug, Default, Clone)]
pub struct Notes {
    pub first_connection_error: Option<String>,
    pub first_refusal: Option<String>,
}

/// Sends the numbered messages and keeps what happened to each.
#[derive(Debug)]
pub struct Poster {
    client: reqwest::Client,
    /// The `@connections/{id}` URL of each connection.
    urls: Vec<String>,
    /// The next number of each connection, locked while a POST to it is on its way.
    lanes: Vec<Arc<AsyncMutex<u64>>>,
    posts: Mutex<Vec<Post>>,
    notes: Mutex<Notes>,
    retry_for: Duration,
    /// The scenario's deadline: no retry and no new POST of the sweep after it.
    deadline: Instant,
}

impl Poster {
    /// A poster to `urls`, keeping up to `in_flight` idle HTTP connections, retrying each
    /// message for up to `retry_for` and never after `deadline`.
    pub fn new(
        urls: Vec<String>,
        in_flight: usize,
        retry_for: Duration,
        deadline: Instant,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(in_flight)
            .timeout(ATTEMPT_TIMEOUT)
            .build()?;
        let lanes = urls.iter().map(|_| Arc::new(AsyncMutex::new(0))).collect();
        Ok(Self {
            client,
            urls,
            lanes,
            posts: Mutex::default(),
            notes: Mutex::default(),
            retry_for,
            deadline,
        })
    }

    /// Sends POSTs at `rate` per second, round-robin over the connections, until `stop`. A
    /// connection whose previous POST is still being retried is passed over, as is every POST
    /// due while `in_flight` has no permit left: the pacer never bursts to catch up.
    pub async fn pace(
        self: Arc<Self>,
        rate: f64,
        in_flight: Arc<Semaphore>,
        stop: Arc<AtomicBool>,
    ) -> Pacing {
        let start = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut pacing = Pacing::default();
        let cap = in_flight.available_permits();
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let due = (start.elapsed().as_secs_f64() * rate) as usize;
            while pacing.due < due {
                let conn = pacing.due % self.urls.len();
                pacing.due += 1;
                let Ok(lane) = self.lanes[conn].clone().try_lock_owned() else {
                    pacing.busy += 1;
                    continue;
                };
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    pacing.capped += 1;
                    continue;
                };
                pacing.sent += 1;
                pacing.max_in_flight = pacing
                    .max_in_flight
                    .max(cap - in_flight.available_permits());
                let poster = self.clone();
                tokio::spawn(async move {
                    poster.post_next(conn, lane, Phase::Steady).await;
                    drop(permit);
                });
            }
        }
        pacing.wall = start.elapsed();
        pacing
    }

    /// One POST to every connection, `concurrency` in flight, until the deadline. (Against a
    /// gateway that died, each would be retried for the whole retry time.)
    pub async fn sweep(self: &Arc<Self>, concurrency: usize) {
        bounded(self.urls.len(), concurrency, |conn| {
            let poster = self.clone();
            async move {
                if Instant::now() > poster.deadline {
                    return Ok(());
                }
                let lane = poster.lanes[conn].clone().lock_owned().await;
                poster.post_next(conn, lane, Phase::Sweep).await;
                Ok(())
            }
        })
        .await;
    }

    /// Sends the next numbered message of connection `conn` (whose lane is held), retrying it
    /// until it is answered or `retry_for` has passed, and records how it went.
    async fn post_next(&self, conn: usize, mut lane: OwnedMutexGuard<u64>, phase: Phase) {
        let seq = *lane;
        // The number is used once, whatever happens: a message never answered 200 keeps it, so
        // that a late arrival of it is seen as such.
        *lane += 1;
        let body = body(conn, seq);
        let first_sent = Instant::now();
        let give_up_at = self.deadline.min(first_sent + self.retry_for);
        let mut retried_statuses = Vec::new();
        let mut connection_errors = 0;
        let mut backoff = FIRST_BACKOFF;
        let outcome = loop {
            match self
                .client
                .post(&self.urls[conn])
                .body(body.clone())
                .send()
                .await
            {
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    // Read to the end, so the HTTP connection can carry the next request.
                    let text = answer.text().await.unwrap_or_default();
                    if status == 200 {
                        break Outcome::Delivered;
                    }
                    if !RETRIED.contains(&status) {
                        self.note(|n| &mut n.first_refusal, || format!("{status} {text}"));
                        break Outcome::Refused(status);
                    }
                    retried_statuses.push(status);
                }
                Err(e) => {
                    connection_errors += 1;
                    self.note(|n| &mut n.first_connection_error, || causes(&e));
                }
            }
            if Instant::now() + backoff > give_up_at {
                break Outcome::GaveUp;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(LAST_BACKOFF);
        };
        let post = Post {
            conn,
            seq,
            phase,
            first_sent,
            took: first_sent.elapsed(),
            outcome,
            retried_statuses,
            connection_errors,
        };
        self.posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(post);
        drop(lane);
    }

    fn note(
        &self,
        field: impl Fn(&mut Notes) -> &mut Option<String>,
        text: impl FnOnce() -> String,
    ) {
        let mut notes = self.notes.lock().unwrap_or_else(PoisonError::into_inner);
        field(&mut notes).get_or_insert_with(text);
    }

    /// Every POST that has ended so far.
    pub fn posts(&self) -> Vec<Post> {
        self.posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// POSTs answered 200 so far.
    pub fn delivered(&self) -> usize {
        self.posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|p| p.outcome == Outcome::Delivered)
            .count()
    }

    /// The first connection error and refusal.
    pub fn notes(&self) -> Notes {
        self.notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// An error with its causes (reqwest's own message names only the URL).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Waits until every POST holding a permit of `in_flight` (of `cap`) has ended, or `within`:
/// whether they all did.
pub async fn drain(in_flight: &Semaphore, cap: usize, within: Duration) -> bool {
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    matches!(
        tokio::time::timeout(within, in_flight.acquire_many(all)).await,
        Ok(Ok(_))
    )
}
