//! One address opening thousands of connections: the per-address limits answer 429 and the
//! gateway keeps serving everyone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::common::*;

const ATTEMPTS: usize = 10_000;
/// Upgrades in flight at once.
const CONCURRENCY: usize = 200;

/// Sends a raw upgrade request; answers the status code and, for a 101, the open stream.
async fn upgrade(addr: std::net::SocketAddr) -> (u16, Option<TcpStream>) {
    let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
    let request = format!(
        "GET /dev HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let status = String::from_utf8_lossy(&head)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, (status == 101).then_some(stream))
}

/// Makes `ATTEMPTS` upgrades, `CONCURRENCY` at a time, keeping the accepted ones open; answers
/// (accepted, refused with 429, other) and the open streams.
async fn flood(addr: std::net::SocketAddr) -> (usize, usize, usize, Vec<TcpStream>) {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let (accepted, limited, other) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut tasks = Vec::with_capacity(ATTEMPTS);
    for _ in 0..ATTEMPTS {
        let permit = permits.clone().acquire_owned().await.expect("permit");
        let (accepted, limited, other) = (accepted.clone(), limited.clone(), other.clone());
        tasks.push(tokio::spawn(async move {
            let (status, stream) = upgrade(addr).await;
            drop(permit);
            match status {
                101 => accepted.fetch_add(1, Ordering::Relaxed),
                429 => limited.fetch_add(1, Ordering::Relaxed),
                _ => other.fetch_add(1, Ordering::Relaxed),
            };
            stream
        }));
    }
    let mut open = Vec::new();
    for task in tasks {
        if let Some(stream) = task.await.expect("task") {
            open.push(stream);
        }
    }
    (
        accepted.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
        open,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_from_one_address_hit_the_per_address_limit() {
    let gw = TestGateway::builder()
        .toml("[limits]\nnew_connections_per_ip_per_second = 0\nmax_connections_per_ip = 1000\nexempt_loopback = false")
        .mock("$default", 200, "${request.body}", true)
        .start()
        .await;
    let (accepted, limited, other, open) = flood(gw.addr()).await;
    assert_eq!((accepted, limited, other), (1000, 9000, 0));
    assert_eq!(gw.gateway.hub().len(), 1000);
    // Another address would still get in; from this one, a slot frees when a client leaves.
    drop(open);
    let deadline = tokio::time::Instant::now() + WAIT;
    while gw.gateway.open_connections() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slots are given back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut client = gw.connect().await;
    send(&mut client, "still serving").await;
    assert_eq!(next_text(&mut client).await, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_upgrades_from_one_address_is_rate_limited_at_the_default_rate() {
    // The test's clients are on loopback, which is exempt by default (a same-host proxy).
    let gw = TestGateway::builder()
        .toml("[limits]\nexempt_loopback = false")
        .mock("$default", 200, "${request.body}", true)
        .start()
        .await;
    let started = tokio::time::Instant::now();
    let (accepted, limited, other, _open) = flood(gw.addr()).await;
    let seconds = started.elapsed().as_secs_f64();
    // The default: a burst of 100, then 100 a second.
    let most = 100 + (seconds * 100.0).ceil() as usize;
    assert!(
        (100..=most).contains(&accepted),
        "accepted {accepted} in {seconds:.2} s"
    );
    assert_eq!(accepted + limited, ATTEMPTS);
    assert_eq!(other, 0);
}
