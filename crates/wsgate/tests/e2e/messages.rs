//! Messages: route selection, MESSAGE events, route responses and error frames.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

fn error_frame_matches(frame: &str, message: &str, id: &str) {
    let prefix = format!(r#"{{"message": "{message}", "connectionId":"{id}", "requestId":""#);
    assert!(frame.starts_with(&prefix), "{frame}");
    let request_id = &frame[prefix.len()..frame.len() - 2];
    assert_eq!(request_id.len(), 16, "{frame}");
    assert!(frame.ends_with("\"}"), "{frame}");
}

#[tokio::test]
async fn message_route_sends_the_event_and_returns_the_route_response() {
    let stub = Stub::start().await;
    stub.on(
        "/send",
        Behavior::Json(200, json!({"statusCode": 200, "body": "sent!"})),
    );
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .http("sendmessage", &stub.url("/send"), true)
        .start()
        .await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let message = r#"{"action":"sendmessage","text":"hi all"}"#;
    send(&mut client, message).await;
    assert_eq!(next_text(&mut client).await, "sent!");
    let connect = &stub.events("/connect")[0];
    let event = &stub.events("/send")[0];
    assert_eq!(event["body"], message);
    assert_eq!(event["isBase64Encoded"], false);
    assert!(event.get("headers").is_none());
    assert!(event.get("queryStringParameters").is_none());
    let rc = &event["requestContext"];
    assert_eq!(rc["routeKey"], "sendmessage");
    assert_eq!(rc["eventType"], "MESSAGE");
    assert_eq!(rc["connectionId"], id.as_str());
    assert_eq!(rc["connectedAt"], connect["requestContext"]["connectedAt"]);
    assert_eq!(rc["messageId"].as_str().map(str::len), Some(16));
    assert_eq!(rc["requestId"], rc["extendedRequestId"]);
    assert_ne!(rc["requestId"], connect["requestContext"]["requestId"]);
}

#[tokio::test]
async fn one_way_routes_send_nothing_back() {
    let stub = Stub::start().await;
    stub.on(
        "/send",
        Behavior::Json(200, json!({"statusCode": 200, "body": "ignored"})),
    );
    let gw = TestGateway::builder()
        .http("sendmessage", &stub.url("/send"), false)
        .mock("ping", 200, "pong", true)
        .start()
        .await;
    let mut client = gw.connect().await;
    send(&mut client, r#"{"action":"sendmessage"}"#).await;
    stub.wait_events("/send", 1).await;
    send(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut client).await, "pong");
}

#[tokio::test]
async fn status_code_of_message_routes_is_ignored() {
    let stub = Stub::start().await;
    stub.on(
        "/send",
        Behavior::Json(200, json!({"statusCode": 500, "body": "still delivered"})),
    );
    let gw = TestGateway::builder()
        .http("sendmessage", &stub.url("/send"), true)
        .start()
        .await;
    let mut client = gw.connect().await;
    send(&mut client, r#"{"action":"sendmessage"}"#).await;
    assert_eq!(next_text(&mut client).await, "still delivered");
}

#[tokio::test]
async fn plain_backend_answers_are_route_responses() {
    let stub = Stub::start().await;
    stub.on("/send", Behavior::Text(200, "plain text".into()));
    let gw = TestGateway::builder()
        .http("sendmessage", &stub.url("/send"), true)
        .start()
        .await;
    let mut client = gw.connect().await;
    send(&mut client, r#"{"action":"sendmessage"}"#).await;
    assert_eq!(next_text(&mut client).await, "plain text");
}

#[tokio::test]
async fn selection_by_nested_path_and_template() {
    let nested = TestGateway::builder()
        .mock("join", 200, "joined", true)
        .mock("$default", 200, "default", true);
    let mut config = nested.config();
    config.gateway.route_selection_expression = "$request.body.meta.kind".into();
    let running = wsgate::Gateway::start(config).await.expect("starts");
    let url = format!("ws://{}/dev", running.local_addr());
    let mut client = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects")
        .0;
    send(&mut client, r#"{"meta":{"kind":"join"}}"#).await;
    assert_eq!(next_text(&mut client).await, "joined");
    send(&mut client, r#"{"meta":{}}"#).await;
    assert_eq!(next_text(&mut client).await, "default");

    let templated = TestGateway::builder().mock("chat/join", 200, "chat joined", true);
    let mut config = templated.config();
    config.gateway.route_selection_expression = "${request.body.svc}/${request.body.op}".into();
    let running = wsgate::Gateway::start(config).await.expect("starts");
    let url = format!("ws://{}/dev", running.local_addr());
    let mut client = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects")
        .0;
    send(&mut client, r#"{"svc":"chat","op":"join"}"#).await;
    assert_eq!(next_text(&mut client).await, "chat joined");
}

#[tokio::test]
async fn non_json_goes_to_default() {
    let gw = TestGateway::builder()
        .mock("x", 200, "x", true)
        .mock("$default", 200, "fallback", true)
        .start()
        .await;
    let mut client = gw.connect().await;
    send(&mut client, "not json at all").await;
    assert_eq!(next_text(&mut client).await, "fallback");
}

#[tokio::test]
async fn no_route_and_no_default_sends_forbidden_and_stays_open() {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .mock("known", 200, "known", true)
        .start()
        .await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    send(&mut client, r#"{"action":"unknown"}"#).await;
    error_frame_matches(&next_text(&mut client).await, "Forbidden", &id);
    send(&mut client, "not json").await;
    error_frame_matches(&next_text(&mut client).await, "Forbidden", &id);
    send(&mut client, r#"{"action":"known"}"#).await;
    assert_eq!(next_text(&mut client).await, "known");
}

#[tokio::test]
async fn failing_backend_sends_internal_server_error_even_on_one_way_routes() {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .http("sendmessage", "http://127.0.0.1:1/down", false)
        .mock("ping", 200, "pong", true)
        .start()
        .await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    send(&mut client, r#"{"action":"sendmessage"}"#).await;
    error_frame_matches(&next_text(&mut client).await, "Internal server error", &id);
    send(&mut client, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut client).await, "pong");
}

#[tokio::test]
async fn slow_backend_sends_endpoint_request_timed_out() {
    let stub = Stub::start().await;
    stub.on(
        "/slow",
        Behavior::Delay(
            Duration::from_secs(3),
            Box::new(Behavior::Json(
                200,
                json!({"statusCode": 200, "body": "late"}),
            )),
        ),
    );
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .toml(&format!("[routes.slow]\ntype = \"http\"\nurl = \"{}\"\ntimeout = \"300ms\"\nroute_response = true", stub.url("/slow")))
        .start()
        .await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    send(&mut client, r#"{"action":"slow"}"#).await;
    error_frame_matches(
        &next_text(&mut client).await,
        "Endpoint request timed out",
        &id,
    );
}

#[tokio::test]
async fn messages_of_one_connection_are_handled_concurrently() {
    let stub = Stub::start().await;
    stub.on(
        "/slow",
        Behavior::Delay(
            Duration::from_millis(1500),
            Box::new(Behavior::Json(
                200,
                json!({"statusCode": 200, "body": "slow"}),
            )),
        ),
    );
    stub.on(
        "/fast",
        Behavior::Json(200, json!({"statusCode": 200, "body": "fast"})),
    );
    let gw = TestGateway::builder()
        .http("slow", &stub.url("/slow"), true)
        .http("fast", &stub.url("/fast"), true)
        .start()
        .await;
    let mut client = gw.connect().await;
    send(&mut client, r#"{"action":"slow"}"#).await;
    send(&mut client, r#"{"action":"fast"}"#).await;
    assert_eq!(next_text(&mut client).await, "fast");
    assert_eq!(next_text(&mut client).await, "slow");
}

#[tokio::test]
async fn binary_frames_can_be_accepted_as_base64() {
    let stub = Stub::start().await;
    stub.on(
        "/default",
        Behavior::Json(
            200,
            json!({"statusCode": 200, "body": "AAEC", "isBase64Encoded": true}),
        ),
    );
    let gw = TestGateway::builder().http("$default", &stub.url("/default"), true);
    let mut config = gw.config();
    config.gateway.binary_frames = wsgate_core::config::BinaryFrames::Accept;
    let running = wsgate::Gateway::start(config).await.expect("starts");
    let url = format!("ws://{}/dev", running.local_addr());
    let mut client = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects")
        .0;
    use futures_util::SinkExt;
    client
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            255u8, 0,
        ]))
        .await
        .expect("send");
    match next(&mut client).await {
        tokio_tungstenite::tungstenite::Message::Binary(data) => assert_eq!(&data[..], &[0, 1, 2]),
        other => panic!("expected binary, got {other:?}"),
    }
    let event = &stub.events("/default")[0];
    assert_eq!(event["body"], "/wA=");
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["requestContext"]["routeKey"], "$default");
}

#[tokio::test]
async fn mock_templates_read_the_message_and_the_context() {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .mock("whoami", 200, r#"{"id":"${context.connectionId}","route":"${context.routeKey}","n":${request.body.n}}"#, true)
        .start()
        .await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    send(&mut client, r#"{"action":"whoami","n":7}"#).await;
    let answer: serde_json::Value =
        serde_json::from_str(&next_text(&mut client).await).expect("json");
    assert_eq!(answer, json!({"id": id, "route": "whoami", "n": 7}));
}

#[tokio::test]
async fn the_embedded_default_config_echoes_and_tells_the_connection_id() {
    let mut config = wsgate::Config::from_toml(wsgate::DEFAULT_CONFIG).expect("parses");
    config.gateway.listen = "127.0.0.1:0".into();
    let running = wsgate::Gateway::start(config).await.expect("starts");
    let url = format!("ws://{}/dev", running.local_addr());
    let mut client = tokio_tungstenite::connect_async(url)
        .await
        .expect("connects")
        .0;
    for message in [
        r#"{"action":"sendmessage","data":"hi"}"#,
        "plain text",
        "{}",
    ] {
        send(&mut client, message).await;
        assert_eq!(next_text(&mut client).await, message);
    }
    send(&mut client, r#"{"action":"whoami"}"#).await;
    let answer: serde_json::Value =
        serde_json::from_str(&next_text(&mut client).await).expect("json");
    let id = answer["connectionId"].as_str().expect("id").to_owned();
    let url = format!(
        "http://{}/dev/@connections/{}",
        running.local_addr(),
        id.replace('=', "%3D")
    );
    assert_eq!(
        http()
            .post(url)
            .body("pushed")
            .send()
            .await
            .expect("post")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(next_text(&mut client).await, "pushed");
}

#[tokio::test]
async fn echo_of_an_empty_message_is_an_empty_message_but_empty_proxy_bodies_send_nothing() {
    let stub = Stub::start().await;
    stub.on(
        "/send",
        Behavior::Json(200, json!({"statusCode": 200, "body": ""})),
    );
    let gw = TestGateway::builder()
        .http("sendmessage", &stub.url("/send"), true)
        .mock("$default", 200, "${request.body}", true)
        .start()
        .await;
    let mut client = gw.connect().await;
    send(&mut client, "").await;
    assert_eq!(next_text(&mut client).await, "");
    send(&mut client, r#"{"action":"sendmessage"}"#).await;
    stub.wait_events("/send", 1).await;
    send(&mut client, "after").await;
    assert_eq!(next_text(&mut client).await, "after");
}
