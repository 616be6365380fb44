//! Lifecycle: client closes, `$disconnect` events, shutdown and config reload.

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::*;

async fn gateway(stub: &Stub) -> Running {
    TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .http("$disconnect", &stub.url("/disconnect"), false)
        .mock("$default", 200, "${request.body}", true)
        .start()
        .await
}

#[tokio::test]
async fn client_close_code_and_reason_reach_disconnect() {
    let stub = Stub::start().await;
    let gw = gateway(&stub).await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let frame = CloseFrame {
        code: CloseCode::from(4000),
        reason: "bye".into(),
    };
    client
        .send(Message::Close(Some(frame)))
        .await
        .expect("close");
    // The gateway answers the close handshake.
    assert!(matches!(next(&mut client).await, Message::Close(_)));
    let event = &stub.wait_events("/disconnect", 1).await[0];
    let connect = &stub.events("/connect")[0];
    assert_eq!(
        event["headers"],
        json!({"Host": gw.addr().to_string(), "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""})
    );
    assert_eq!(
        event["multiValueHeaders"]["Host"],
        json!([gw.addr().to_string()])
    );
    let rc = &event["requestContext"];
    assert_eq!(rc["routeKey"], "$disconnect");
    assert_eq!(rc["eventType"], "DISCONNECT");
    assert_eq!(rc["disconnectStatusCode"], 4000);
    assert_eq!(rc["disconnectReason"], "bye");
    assert_eq!(rc["connectionId"], id.as_str());
    assert_eq!(rc["connectedAt"], connect["requestContext"]["connectedAt"]);
    assert!(rc.get("messageId").is_none());
    assert!(event.get("body").is_none());
    assert!(event.get("queryStringParameters").is_none());
}

#[tokio::test]
async fn close_without_status_reports_1005() {
    let stub = Stub::start().await;
    let gw = gateway(&stub).await;
    let (mut client, _) = connect_with_id(&gw, &stub).await;
    client.send(Message::Close(None)).await.expect("close");
    let event = &stub.wait_events("/disconnect", 1).await[0];
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1005);
    assert_eq!(
        event["requestContext"]["disconnectReason"],
        "Client-side close frame status not set"
    );
}

#[tokio::test]
async fn dropped_tcp_connection_reports_1006() {
    let stub = Stub::start().await;
    let gw = gateway(&stub).await;
    let (client, id) = connect_with_id(&gw, &stub).await;
    drop(client);
    let event = &stub.wait_events("/disconnect", 1).await[0];
    assert_eq!(event["requestContext"]["disconnectStatusCode"], 1006);
    let gone = http()
        .post(gw.connection_url(&id))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_eq!(gone.status().as_u16(), 410);
}

#[tokio::test]
async fn shutdown_closes_every_client_with_1001_and_runs_their_disconnects() {
    let stub = Stub::start().await;
    let gw = gateway(&stub).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect_with_id(&gw, &stub).await.0);
    }
    let stopping = tokio::spawn(gw.gateway.shutdown());
    for client in &mut clients {
        assert_eq!(close_of(client).await, (1001, "Going away".to_owned()));
        // Complete the close handshake so the session ends at once.
        let _ = client.close(None).await;
    }
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown within the grace")
        .expect("joined");
    let events = stub.events("/disconnect");
    assert_eq!(
        events.len(),
        3,
        "every $disconnect ran before shutdown returned"
    );
    assert!(
        events
            .iter()
            .all(|e| e["requestContext"]["disconnectStatusCode"] == 1001)
    );
}

#[tokio::test]
async fn reload_changes_routes_and_keeps_connections() {
    let stub = Stub::start().await;
    let gw = gateway(&stub).await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    send(&mut client, "before").await;
    assert_eq!(next_text(&mut client).await, "before");
    let config = TestGateway::builder()
        .mock("$default", 200, "reloaded", true)
        .config();
    gw.gateway.reload(config).expect("reloads");
    send(&mut client, "after").await;
    assert_eq!(next_text(&mut client).await, "reloaded");
    let response = http()
        .post(gw.connection_url(&id))
        .body("still here")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(next_text(&mut client).await, "still here");
    assert!(client.next().now_or_never_is_pending());
}

trait NowOrNever {
    fn now_or_never_is_pending(&mut self) -> bool;
}

impl<S: futures_util::Stream + Unpin> NowOrNever for futures_util::stream::Next<'_, S> {
    fn now_or_never_is_pending(&mut self) -> bool {
        futures_util::FutureExt::now_or_never(self).is_none()
    }
}

#[tokio::test]
async fn a_connect_still_running_at_shutdown_completes_and_gets_its_disconnect() {
    let stub = Stub::start().await;
    stub.on(
        "/connect",
        Behavior::Delay(
            std::time::Duration::from_millis(800),
            Box::new(Behavior::Json(200, json!({"statusCode": 200}))),
        ),
    );
    let gw = gateway(&stub).await;
    let url = gw.ws_url();
    let connecting = tokio::spawn(async move { tokio_tungstenite::connect_async(url).await });
    // `$connect` has the event and is still answering when the gateway is told to stop.
    stub.wait_events("/connect", 1).await;
    let stopping = tokio::spawn(gw.gateway.shutdown());
    let (mut client, response) = tokio::time::timeout(WAIT, connecting)
        .await
        .expect("the handshake ends")
        .expect("joined")
        .expect("the upgrade that was under way completes");
    assert_eq!(response.status(), 101);
    assert_eq!(close_of(&mut client).await, (1001, "Going away".to_owned()));
    let _ = client.close(None).await;
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown within the grace")
        .expect("joined");
    let events = stub.events("/disconnect");
    assert_eq!(
        events.len(),
        1,
        "the connection $connect accepted got its $disconnect before shutdown returned"
    );
    assert_eq!(events[0]["requestContext"]["disconnectStatusCode"], 1001);
}

#[tokio::test]
async fn an_upgrade_that_starts_after_shutdown_began_is_refused_with_503() {
    let stub = Stub::start().await;
    stub.on(
        "/disconnect",
        Behavior::Delay(
            std::time::Duration::from_millis(800),
            Box::new(Behavior::Json(200, json!({}))),
        ),
    );
    let gw = gateway(&stub).await;
    let addr = gw.addr();
    // A kept-alive HTTP connection opened before the shutdown: the listener stops accepting,
    // but this one can still send an upgrade.
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let (mut client, _) = connect_with_id(&gw, &stub).await;
    let stopping = tokio::spawn(gw.gateway.shutdown());
    assert_eq!(close_of(&mut client).await.0, 1001);
    let _ = client.close(None).await;
    tokio::io::AsyncWriteExt::write_all(&mut stream, upgrade_head("/dev").as_bytes())
        .await
        .expect("writes");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown within the grace")
        .expect("joined");
    assert!(
        stub.events("/connect").len() == 1,
        "no $connect for the refused upgrade"
    );
}
