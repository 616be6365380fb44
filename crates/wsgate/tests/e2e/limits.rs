//! Limits: frame and message size, binary frames, idle and maximum lifetime (with paused time).

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

use crate::common::*;

#[tokio::test]
async fn frame_over_32_kib_closes_with_1009() {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$disconnect", &stub.url("/disconnect"), false)
        .start()
        .await;
    let mut client = gw.connect().await;
    send(&mut client, &"a".repeat(32 * 1024 + 1)).await;
    assert_eq!(close_of(&mut client).await.0, 1009);
    let event = &stub.wait_events("/disconnect", 1).await[0];
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1009);
}

#[tokio::test]
async fn frame_of_exactly_32_kib_is_accepted() {
    let gw = TestGateway::builder()
        .mock("$default", 200, "ok", true)
        .start()
        .await;
    let mut client = gw.connect().await;
    send(&mut client, &"a".repeat(32 * 1024)).await;
    assert_eq!(next_text(&mut client).await, "ok");
}

fn fragment(opcode: OpCode, is_final: bool, payload: Vec<u8>) -> Message {
    let header = FrameHeader {
        is_final,
        opcode,
        ..FrameHeader::default()
    };
    Message::Frame(Frame::from_payload(header, payload.into()))
}

#[tokio::test]
async fn fragmented_message_over_128_kib_closes_with_1009() {
    let gw = TestGateway::builder()
        .mock("$default", 200, "ok", true)
        .start()
        .await;
    let mut client = gw.connect().await;
    // 120 KiB in 30 KiB frames is fine ...
    let chunk = vec![b'a'; 30 * 1024];
    client
        .send(fragment(OpCode::Data(Data::Text), false, chunk.clone()))
        .await
        .expect("send");
    for _ in 0..2 {
        client
            .send(fragment(OpCode::Data(Data::Continue), false, chunk.clone()))
            .await
            .expect("send");
    }
    client
        .send(fragment(OpCode::Data(Data::Continue), true, chunk.clone()))
        .await
        .expect("send");
    assert_eq!(next_text(&mut client).await, "ok");
    // ... 150 KiB is not.
    client
        .send(fragment(OpCode::Data(Data::Text), false, chunk.clone()))
        .await
        .expect("send");
    for _ in 0..4 {
        let _ = client
            .send(fragment(OpCode::Data(Data::Continue), false, chunk.clone()))
            .await;
    }
    assert_eq!(close_of(&mut client).await.0, 1009);
}

#[tokio::test]
async fn binary_frame_closes_with_1003_by_default() {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$disconnect", &stub.url("/disconnect"), false)
        .start()
        .await;
    let mut client = gw.connect().await;
    client
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(close_of(&mut client).await.0, 1003);
    let event = &stub.wait_events("/disconnect", 1).await[0];
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1003);
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007() {
    let gw = TestGateway::builder().start().await;
    let mut client = gw.connect().await;
    client
        .send(fragment(OpCode::Data(Data::Text), true, vec![0xff, 0xfe]))
        .await
        .expect("send");
    assert_eq!(close_of(&mut client).await.0, 1007);
}

#[tokio::test(start_paused = true)]
async fn idle_connection_closes_with_1001_after_ten_minutes() {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$disconnect", &stub.url("/disconnect"), false)
        .start()
        .await;
    let mut client = gw.connect().await;
    let start = tokio::time::Instant::now();
    let (code, reason) = close_of_unbounded(&mut client).await;
    assert_eq!((code, reason.as_str()), (1001, "Going away"));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(600) && waited < Duration::from_secs(601),
        "{waited:?}"
    );
    let event = &stub.wait_events("/disconnect", 1).await[0];
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1001);
    assert_eq!(event["requestContext"]["disconnectReason"], "Going away");
}

#[tokio::test(start_paused = true)]
async fn messages_reset_the_idle_timer() {
    let gw = TestGateway::builder()
        .mock("$default", 200, "ok", true)
        .start()
        .await;
    let mut client = gw.connect().await;
    let start = tokio::time::Instant::now();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(500)).await;
        send(&mut client, "still here").await;
        assert_eq!(next_text(&mut client).await, "ok");
    }
    let (code, _) = close_of_unbounded(&mut client).await;
    assert_eq!(code, 1001);
    assert!(
        start.elapsed() >= Duration::from_secs(1500 + 600),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn busy_connection_closes_with_1001_after_two_hours() {
    let gw = TestGateway::builder()
        .mock("$default", 200, "ok", true)
        .start()
        .await;
    let mut client = gw.connect().await;
    let start = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(300)).await;
        send(&mut client, "busy").await;
        match next(&mut client).await {
            Message::Text(_) => continue,
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 1001);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let lived = start.elapsed();
    assert!(
        lived >= Duration::from_secs(7200) && lived <= Duration::from_secs(7200 + 300),
        "{lived:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_and_lifetime_are_configurable() {
    let gw = TestGateway::builder()
        .toml("[limits]\nidle_timeout = \"30s\"\nmax_connection_duration = \"1h\"")
        .start()
        .await;
    let mut client = gw.connect().await;
    let start = tokio::time::Instant::now();
    assert_eq!(close_of_unbounded(&mut client).await.0, 1001);
    assert!(
        start.elapsed() >= Duration::from_secs(30) && start.elapsed() < Duration::from_secs(31)
    );
}

/// Waits for the Close without the real-time bound of `close_of` (time is paused here).
async fn close_of_unbounded(client: &mut Client) -> (u16, String) {
    use futures_util::StreamExt;
    while let Some(message) = client.next().await {
        if let Message::Close(Some(frame)) = message.expect("ok") {
            return (frame.code.into(), frame.reason.to_string());
        }
    }
    panic!("closed without a close frame");
}
