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
