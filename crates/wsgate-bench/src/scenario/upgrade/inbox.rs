//! The receiving side: one reader per connection that notes every numbered message (its number,
//! in the order it arrived), every echo answer, and how the connection ended if it did; then the
//! check of what arrived against what the gateway answered 200.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::poster::{Outcome, Phase, Post};
use crate::client::Ws;

/// The body of numbered message `seq` to connection `conn`. It names the connection, so that a
/// message delivered to the wrong one is seen.
pub fn body(conn: usize, seq: u64) -> String {
    format!("upgrade {conn} {seq}")
}

/// The (connection, number) of a numbered message.
fn parse_body(text: &str) -> Option<(usize, u64)> {
    let mut words = text.strip_prefix("upgrade ")?.split(' ');
    let conn = words.next()?.parse().ok()?;
    let seq = words.next()?.parse().ok()?;
    words.next().is_none().then_some((conn, seq))
}

/// The message that asks connection `conn` for an echo: the bench config's `echo` route answers
/// it with itself.
pub fn echo_request(conn: usize) -> String {
    serde_json::json!({"action": "echo", "probe": conn}).to_string()
}

/// What one connection's reader saw.
#[derive(Debug, Default)]
struct Log {
    /// The numbers of the numbered messages, in the order they arrived.
    seqs: Vec<u64>,
    /// Echo answers received.
    echoes: usize,
    /// Numbered messages or echoes meant for another connection.
    misdelivered: usize,
    /// Frames that were neither.
    unexpected: usize,
    /// How the connection ended, if it did.
    ended: Option<String>,
}

/// Every connection's log, and counts to wait on.
#[derive(Debug)]
pub struct Inbox {
    logs: Vec<Mutex<Log>>,
    arrived: AtomicUsize,
    echoes: AtomicUsize,
}

impl Inbox {
    /// An inbox for `connections` connections.
    pub fn new(connections: usize) -> Self {
        Self {
            logs: (0..connections).map(|_| Mutex::default()).collect(),
            arrived: AtomicUsize::new(0),
            echoes: AtomicUsize::new(0),
        }
    }

    /// Reads connection `conn` until it ends, noting what arrives.
    pub fn spawn_reader(
        self: &std::sync::Arc<Self>,
        conn: usize,
        mut stream: SplitStream<Ws>,
    ) -> JoinHandle<()> {
        let inbox = self.clone();
        tokio::spawn(async move {
            let ended = loop {
                match stream.next().await {
                    Some(Ok(Message::Text(text))) => inbox.note(conn, text.as_str()),
                    Some(Ok(Message::Binary(data))) => {
                        inbox.note(conn, &String::from_utf8_lossy(&data));
                    }
                    Some(Ok(Message::Close(frame))) => {
                        break match frame {
                            Some(frame) => {
                                format!("close frame {} {:?}", frame.code, frame.reason.as_str())
                            }
                            None => "close frame without a code".to_owned(),
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("error: {e}"),
                    None => break "ended without a close frame".to_owned(),
                }
            };
            inbox.with_log(conn, |log| log.ended = Some(ended));
        })
    }

    fn with_log<T>(&self, conn: usize, f: impl FnOnce(&mut Log) -> T) -> T {
        // A reader that panicked poisons only its own log; what it wrote is still worth reading.
        let mut log = self.logs[conn]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut log)
    }

    fn note(&self, conn: usize, text: &str) {
        if let Some((to, seq)) = parse_body(text) {
            self.with_log(conn, |log| {
                if to == conn {
                    log.seqs.push(seq);
                } else {
                    log.misdelivered += 1;
                }
            });
            self.arrived.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let probe = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v["probe"].as_u64());
        self.with_log(conn, |log| match probe {
            Some(to) if to == conn as u64 => log.echoes += 1,
            Some(_) => log.misdelivered += 1,
            None => log.unexpected += 1,
        });
        if probe.is_some() {
            self.echoes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Numbered messages that arrived, on any connection.
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::Relaxed)
    }

    /// Echo answers that arrived, on any connection.
    pub fn echoes(&self) -> usize {
        self.echoes.load(Ordering::Relaxed)
    }

    /// Connections that ended, and the first one's reason.
    pub fn ended(&self) -> (usize, Option<String>) {
        let mut count = 0;
        let mut first = None;
        for (conn, log) in self.logs.iter().enumerate() {
            let log = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(reason) = &log.ended {
                count += 1;
                first.get_or_insert_with(|| format!("connection {conn}: {reason}"));
            }
        }
        (count, first)
    }

    /// Connections that answered at least one echo.
    pub fn echoed_connections(&self) -> usize {
        (0..self.logs.len())
            .filter(|&conn| self.with_log(conn, |log| log.echoes > 0))
            .count()
    }

    /// Checks what arrived against what was posted.
    pub fn check(&self, posts: &[Post]) -> Delivery {
        let mut by_conn: HashMap<usize, Vec<&Post>> = HashMap::new();
        for post in posts {
            by_conn.entry(post.conn).or_default().push(post);
        }
        let mut delivery = Delivery::default();
        for (conn, log) in self.logs.iter().enumerate() {
            let log = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            delivery.misdelivered += log.misdelivered;
            delivery.unexpected += log.unexpected;
            let posted = by_conn.get(&conn).map(Vec::as_slice).unwrap_or_default();
            delivery.add(posted, &log.seqs);
        }
        delivery
    }
}

/// Whether what the gateway answered 200 arrived, once and in order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Messages posted at the steady rate, answered 200, that arrived.
    pub delivered: usize,
    /// Messages of the check afterwards (one to each connection), answered 200, that arrived.
    pub delivered_afterwards: usize,
    /// Messages answered 200 that never arrived.
    pub lost: usize,
    /// Extra copies of a message.
    pub duplicates: usize,
    /// … of which the POST had a connection error before its 200: the retry may have sent again
    /// what the gateway had already delivered, as boto3's retry would.
    pub duplicates_after_connection_error: usize,
    /// Messages that arrived after one with a higher number.
    pub out_of_order: usize,
    /// Messages that arrived although their POST was never answered 200 (a 503 must mean "not
    /// delivered").
    pub arrived_without_200: usize,
    /// Messages or echoes that arrived at the wrong connection.
    pub misdelivered: usize,
    /// Frames that were none of the bench's.
    pub unexpected: usize,
}

impl Delivery {
    /// Adds one connection: what was posted to it and the numbers that arrived, in order.
    fn add(&mut self, posted: &[&Post], arrived: &[u64]) {
        let answered: HashSet<u64> = posted
            .iter()
            .filter(|p| p.outcome == Outcome::Delivered)
            .map(|p| p.seq)
            .collect();
        let ambiguous: HashSet<u64> = posted
            .iter()
            .filter(|p| p.connection_errors > 0)
            .map(|p| p.seq)
            .collect();
        let mut copies: HashMap<u64, usize> = HashMap::new();
        let mut highest: Option<u64> = None;
        for &seq in arrived {
            let seen = copies.entry(seq).or_default();
            *seen += 1;
            if *seen > 1 {
                self.duplicates += 1;
                if ambiguous.contains(&seq) {
                    self.duplicates_after_connection_error += 1;
                }
                continue;
            }
            if highest.is_some_and(|h| seq < h) {
                self.out_of_order += 1;
            }
            highest = highest.max(Some(seq));
            if !answered.contains(&seq) {
                self.arrived_without_200 += 1;
            }
        }
        for post in posted.iter().filter(|p| p.outcome == Outcome::Delivered) {
            if !copies.contains_key(&post.seq) {
                self.lost += 1;
            } else if post.phase == Phase::Sweep {
                self.delivered_afterwards += 1;
            } else {
                self.delivered += 1;
            }
        }
    }
}

/// Waits until `count()` reaches `want`, or `within` has passed: the last count.
pub async fn wait_for(count: impl Fn() -> usize, want: usize, within: Duration) -> usize {
    let until = Instant::now() + within;
    while count() < want && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(seq: u64, outcome: Outcome, connection_errors: u32) -> Post {
        Post {
            conn: 0,
            seq,
            phase: Phase::Steady,
            first_sent: Instant::now(),
            took: Duration::ZERO,
            outcome,
            retried_statuses: Vec::new(),
            connection_errors,
        }
    }

    fn check(posted: &[Post], arrived: &[u64]) -> Delivery {
        let mut delivery = Delivery::default();
        delivery.add(&posted.iter().collect::<Vec<_>>(), arrived);
        delivery
    }

    #[test]
    fn a_body_names_its_connection_and_number() {
        assert_eq!(parse_body(&body(17, 4)), Some((17, 4)));
        assert_eq!(parse_body("upgrade 17"), None);
        assert_eq!(parse_body("upgrade 17 4 5"), None);
        assert_eq!(parse_body(&echo_request(3)), None);
    }

    #[test]
    fn everything_once_in_order_is_clean() {
        let posted = [0, 1, 2].map(|s| post(s, Outcome::Delivered, 0));
        let delivery = check(&posted, &[0, 1, 2]);
        assert_eq!(
            delivery,
            Delivery {
                delivered: 3,
                ..Delivery::default()
            }
        );
    }

    #[test]
    fn a_missing_message_is_lost_and_a_late_one_out_of_order() {
        let posted = [0, 1, 2, 3].map(|s| post(s, Outcome::Delivered, 0));
        let delivery = check(&posted, &[0, 2, 1]);
        assert_eq!(delivery.lost, 1);
        assert_eq!(delivery.out_of_order, 1);
        assert_eq!(delivery.delivered, 3);
    }

    #[test]
    fn a_copy_is_a_duplicate_and_says_whether_a_retry_explains_it() {
        let posted = [
            post(0, Outcome::Delivered, 1),
            post(1, Outcome::Delivered, 0),
        ];
        let delivery = check(&posted, &[0, 0, 1, 1]);
        assert_eq!(delivery.duplicates, 2);
        assert_eq!(delivery.duplicates_after_connection_error, 1);
        assert_eq!(delivery.out_of_order, 0);
    }

    #[test]
    fn a_message_never_answered_200_must_not_arrive() {
        let posted = [
            post(0, Outcome::Refused(410), 0),
            post(1, Outcome::GaveUp, 0),
        ];
        let delivery = check(&posted, &[0]);
        assert_eq!(delivery.arrived_without_200, 1);
        assert_eq!(delivery.lost, 0);
        assert_eq!(delivery.delivered, 0);
    }
}
