//! `$connect`: the upgrade waits for it; its status decides; only the subprotocol header passes.

use serde_json::json;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::*;

async fn refusal_status(url: &str) -> u16 {
    match connect_async(url).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected the upgrade to be refused"),
    }
}

#[tokio::test]
async fn no_connect_route_accepts() {
    let gw = TestGateway::builder()
        .mock("$default", 200, "${request.body}", true)
        .start()
        .await;
    let mut client = gw.connect().await;
    send(&mut client, "hi").await;
    assert_eq!(next_text(&mut client).await, "hi");
}

#[tokio::test]
async fn connect_2xx_accepts() {
    let stub = Stub::start().await;
    stub.on("/connect", Behavior::Json(200, json!({"statusCode": 204})));
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .start()
        .await;
    let _client = gw.connect().await;
    assert_eq!(stub.events("/connect").len(), 1);
}

#[tokio::test]
async fn connect_non_2xx_proxy_status_refuses_with_that_status() {
    let stub = Stub::start().await;
    stub.on(
        "/connect",
        Behavior::Json(200, json!({"statusCode": 401, "body": "no"})),
    );
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .start()
        .await;
    assert_eq!(refusal_status(&gw.ws_url()).await, 401);
}

#[tokio::test]
async fn connect_plain_http_status_refuses_with_that_status() {
    let stub = Stub::start().await;
    stub.on("/connect", Behavior::Text(403, "go away".into()));
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .start()
        .await;
    assert_eq!(refusal_status(&gw.ws_url()).await, 403);
}

#[tokio::test]
async fn connect_mock_status_decides() {
    let gw = TestGateway::builder()
        .mock("$connect", 429, "", false)
        .start()
        .await;
    assert_eq!(refusal_status(&gw.ws_url()).await, 429);
}

#[tokio::test]
async fn connect_backend_down_gives_502() {
    let gw = TestGateway::builder()
        .http("$connect", "http://127.0.0.1:1/connect", false)
        .start()
        .await;
    assert_eq!(refusal_status(&gw.ws_url()).await, 502);
}

#[tokio::test]
async fn connect_malformed_proxy_result_gives_502() {
    let stub = Stub::start().await;
    stub.on(
        "/connect",
        Behavior::Json(200, json!({"statusCode": "teapot"})),
    );
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .start()
        .await;
    assert_eq!(refusal_status(&gw.ws_url()).await, 502);
}

#[tokio::test]
async fn connect_timeout_gives_504() {
    let stub = Stub::start().await;
    stub.on(
        "/connect",
        Behavior::Delay(
            std::time::Duration::from_secs(3),
            Box::new(Behavior::Json(200, json!({"statusCode": 200}))),
        ),
    );
    let gw = TestGateway::builder()
        .toml(&format!(
            "[routes.\"$connect\"]\ntype = \"http\"\nurl = \"{}\"\ntimeout = \"200ms\"",
            stub.url("/connect")
        ))
        .start()
        .await;
    assert_eq!(refusal_status(&gw.ws_url()).await, 504);
}

#[tokio::test]
async fn only_the_subprotocol_header_of_connect_reaches_the_client() {
    let stub = Stub::start().await;
    stub.on(
        "/connect",
        Behavior::Json(200, json!({"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "chat.v1", "X-Secret": "leak"}})),
    );
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .start()
        .await;
    let mut request = gw.ws_url().into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("chat.v1, chat.v2"),
    );
    let (_client, response) = connect_async(request).await.expect("connects");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.as_bytes()),
        Some(&b"chat.v1"[..])
    );
    assert!(response.headers().get("x-secret").is_none());
    let event = &stub.events("/connect")[0];
    assert_eq!(
        event["headers"]["Sec-WebSocket-Protocol"],
        "chat.v1, chat.v2"
    );
}

#[tokio::test]
async fn post_during_connect_is_410() {
    let stub = Stub::start().await;
    stub.on(
        "/connect",
        Behavior::Delay(
            std::time::Duration::from_millis(800),
            Box::new(Behavior::Json(200, json!({"statusCode": 200}))),
        ),
    );
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .start()
        .await;
    let url = gw.ws_url();
    let connecting = tokio::spawn(async move { connect_async(url).await.map(|c| c.0) });
    let events = stub.wait_events("/connect", 1).await;
    let id = events[0]["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_owned();
    let during = http()
        .post(gw.connection_url(&id))
        .body("early")
        .send()
        .await
        .expect("post");
    assert_eq!(during.status().as_u16(), 410);
    assert_eq!(during.headers()["x-amzn-errortype"], "GoneException");
    let mut client = connecting.await.expect("joined").expect("connects");
    let after = http()
        .post(gw.connection_url(&id))
        .body("now")
        .send()
        .await
        .expect("post");
    assert_eq!(after.status().as_u16(), 200);
    assert_eq!(next_text(&mut client).await, "now");
}

#[tokio::test]
async fn connect_event_has_the_api_gateway_shape() {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .start()
        .await;
    let mut request = format!("{}?room=lobby&room=hall&token=a%3Db", gw.ws_url())
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("User-Agent", HeaderValue::from_static("e2e-test/1.0"));
    let _client = connect_async(request).await.expect("connects");
    let event = &stub.wait_events("/connect", 1).await[0];
    let headers = event["headers"].as_object().expect("headers");
    for name in [
        "Host",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "User-Agent",
        "X-Forwarded-For",
        "X-Forwarded-Port",
        "X-Forwarded-Proto",
        "X-Amzn-Trace-Id",
    ] {
        assert!(headers.contains_key(name), "missing {name} in {headers:?}");
    }
    assert!(
        !headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("upgrade"))
    );
    assert_eq!(
        event["multiValueHeaders"]["User-Agent"],
        json!(["e2e-test/1.0"])
    );
    assert_eq!(
        event["queryStringParameters"],
        json!({"room": "hall", "token": "a=b"})
    );
    assert_eq!(
        event["multiValueQueryStringParameters"],
        json!({"room": ["lobby", "hall"], "token": ["a=b"]})
    );
    assert_eq!(event["isBase64Encoded"], false);
    assert!(event.get("body").is_none());
    let rc = &event["requestContext"];
    assert_eq!(rc["routeKey"], "$connect");
    assert_eq!(rc["eventType"], "CONNECT");
    assert_eq!(rc["messageDirection"], "IN");
    assert_eq!(rc["stage"], "dev");
    assert_eq!(rc["apiId"], "local");
    assert_eq!(rc["domainName"], gw.addr().to_string());
    assert_eq!(
        rc["identity"],
        json!({"userAgent": "e2e-test/1.0", "sourceIp": "127.0.0.1"})
    );
    assert_eq!(rc["requestId"], rc["extendedRequestId"]);
    assert_eq!(rc["connectionId"].as_str().map(str::len), Some(16));
    assert!(rc.get("messageId").is_none());
    let epoch = rc["requestTimeEpoch"].as_u64().expect("ms");
    assert!(epoch > 1_700_000_000_000 && rc["connectedAt"].as_u64().expect("ms") <= epoch);
    let time = rc["requestTime"].as_str().expect("clf");
    assert_eq!(time.len(), "24/May/2024:14:02:09 +0000".len(), "{time}");
    assert!(time.ends_with(" +0000"));
}

#[tokio::test]
async fn connect_without_query_string_has_no_query_fields() {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .start()
        .await;
    let _client = gw.connect().await;
    let event = &stub.wait_events("/connect", 1).await[0];
    assert!(event.get("queryStringParameters").is_none());
    assert!(event.get("multiValueQueryStringParameters").is_none());
}

#[tokio::test]
async fn plain_get_without_upgrade_is_426_and_other_paths_403() {
    let gw = TestGateway::builder().start().await;
    let response = http()
        .get(gw.ws_url().replace("ws://", "http://"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 426);
    let response = http()
        .get(format!("http://{}/other", gw.addr()))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(response.headers()["x-amzn-errortype"], "ForbiddenException");
}
