//! The `@connections` API: POST, GET, DELETE, their errors, and SigV4.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

async fn gateway_with_ids(extra: &str) -> (Running, Stub) {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .toml(extra)
        .start()
        .await;
    (gw, stub)
}

/// A gateway whose `$connect` and `$disconnect` the stub records.
async fn gateway_with_disconnect() -> (Running, Stub) {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .http("$disconnect", &stub.url("/disconnect"), false)
        .start()
        .await;
    (gw, stub)
}

/// DELETEs `url` (204), then the close code and reason the client receives.
async fn closed_by_delete(url: String, client: &mut Client) -> (u16, String) {
    let response = http().delete(url).send().await.expect("delete");
    assert_eq!(response.status().as_u16(), 204);
    close_of(client).await
}

fn assert_error(response: &reqwest::Response, status: u16, kind: &str) {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["x-amzn-errortype"], kind);
    assert!(response.headers().contains_key("x-amzn-requestid"));
}

/// The frames of the next message on `stream`: (FIN, opcode, length) each, and the whole payload.
async fn message_frames(stream: &mut TcpStream) -> (Vec<(bool, u8, usize)>, Vec<u8>) {
    let (mut frames, mut data) = (Vec::new(), Vec::new());
    loop {
        let (fin, opcode, payload) = read_frame(stream).await;
        frames.push((fin, opcode, payload.len()));
        data.extend_from_slice(&payload);
        if fin {
            return (frames, data);
        }
    }
}

/// The ids `GET @connections` lists.
async fn connection_ids(gw: &Running) -> Vec<String> {
    let list: Value = http()
        .get(format!("http://{}/dev/@connections", gw.addr()))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["connectionId"].as_str().expect("an id").to_owned())
        .collect()
}

#[tokio::test]
async fn pushes_over_max_frame_bytes_go_out_in_fragments() {
    // max_frame_bytes is 32768 by default, API Gateway's frame size.
    let gw = TestGateway::builder().start().await;
    let (mut raw, status, _) = raw_upgrade(gw.addr(), "/dev").await;
    assert_eq!(status, 101);
    let [id] = connection_ids(&gw)
        .await
        .try_into()
        .expect("the raw client's id");
    let push = |body: Vec<u8>| {
        let url = gw.connection_url(&id);
        async move {
            let response = http().post(url).body(body).send().await.expect("POST");
            assert_eq!(response.status().as_u16(), 200);
        }
    };

    let text: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    push(text.clone()).await;
    let (frames, data) = message_frames(&mut raw).await;
    assert_eq!(
        frames,
        [
            (false, 1, 32768),
            (false, 0, 32768),
            (false, 0, 32768),
            (true, 0, 1696)
        ]
    );
    assert_eq!(data, text);

    let binary: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8 | 0x80).collect();
    push(binary.clone()).await;
    let (frames, data) = message_frames(&mut raw).await;
    assert_eq!(frames, [(false, 2, 32768), (true, 0, 7232)]);
    assert_eq!(data, binary);

    // Up to the limit, one frame.
    push(vec![b'x'; 32768]).await;
    assert_eq!(message_frames(&mut raw).await.0, [(true, 1, 32768)]);

    // A WebSocket client reassembles the message.
    let mut client = gw.connect().await;
    let other = connection_ids(&gw)
        .await
        .into_iter()
        .find(|other| *other != id)
        .expect("the client's id");
    let response = http()
        .post(gw.connection_url(&other))
        .body(text.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(next_text(&mut client).await.as_bytes(), text.as_slice());
}

#[tokio::test]
async fn post_delivers_text_and_binary() {
    let (gw, stub) = gateway_with_ids("").await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let response = http()
        .post(gw.connection_url(&id))
        .body("hello")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().contains_key("x-amzn-requestid"));
    assert_eq!(next_text(&mut client).await, "hello");
    http()
        .post(gw.connection_url(&id))
        .body(vec![0xff, 0xfe])
        .send()
        .await
        .expect("post");
    assert_eq!(next(&mut client).await, Message::binary(vec![0xff, 0xfe]));
}

#[tokio::test]
async fn post_works_without_stage_and_with_encoded_at_sign() {
    let (gw, stub) = gateway_with_ids("").await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let encoded = id.replace('=', "%3D");
    let bare = format!("http://{}/@connections/{encoded}", gw.addr());
    assert_eq!(
        http()
            .post(bare)
            .body("a")
            .send()
            .await
            .expect("post")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(next_text(&mut client).await, "a");
    let at = format!("http://{}/dev/%40connections/{encoded}", gw.addr());
    assert_eq!(
        http()
            .post(at)
            .body("b")
            .send()
            .await
            .expect("post")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(next_text(&mut client).await, "b");
}

#[tokio::test]
async fn post_to_another_stage_is_403() {
    let (gw, stub) = gateway_with_ids("").await;
    let (_client, id) = connect_with_id(&gw, &stub).await;
    let url = format!(
        "http://{}/prod/@connections/{}",
        gw.addr(),
        id.replace('=', "%3D")
    );
    let response = http().post(url).body("x").send().await.expect("post");
    assert_error(&response, 403, "ForbiddenException");
}

#[tokio::test]
async fn post_to_unknown_connection_returns_410() {
    let gw = TestGateway::builder().start().await;
    let response = http()
        .post(gw.connection_url("TWegAcC4EowCHnA="))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_error(&response, 410, "GoneException");
}

#[tokio::test]
async fn malformed_connection_id_returns_400() {
    let gw = TestGateway::builder().start().await;
    let response = http()
        .post(gw.connection_url("not-an-id"))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_error(&response, 400, "BadRequestException");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["message"], "Invalid connectionId: not-an-id");
}

#[tokio::test]
async fn post_over_128_kib_returns_413() {
    let (gw, stub) = gateway_with_ids("").await;
    let (_client, id) = connect_with_id(&gw, &stub).await;
    let ok = http()
        .post(gw.connection_url(&id))
        .body(vec![b'a'; 131_072])
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status().as_u16(), 200);
    let big = http()
        .post(gw.connection_url(&id))
        .body(vec![b'a'; 131_073])
        .send()
        .await
        .expect("post");
    assert_error(&big, 413, "PayloadTooLargeException");
}

#[tokio::test]
async fn full_outbox_returns_429_and_the_connection_survives() {
    let (gw, stub) = gateway_with_ids("[limits]\noutbox_bytes = 262144").await;
    let (client, id) = connect_with_id(&gw, &stub).await;
    // The client reads nothing: the kernel's socket buffers fill, then the outbox.
    let payload = vec![b'x'; 128 * 1024];
    let mut statuses = Vec::new();
    for _ in 0..400 {
        let status = http()
            .post(gw.connection_url(&id))
            .body(payload.clone())
            .send()
            .await
            .expect("post")
            .status()
            .as_u16();
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(
        statuses.last(),
        Some(&429),
        "never got 429 after {} posts",
        statuses.len()
    );
    let response = http()
        .post(gw.connection_url(&id))
        .body(payload)
        .send()
        .await
        .expect("post");
    assert_error(&response, 429, "LimitExceededException");
    // Reading drains the outbox; the connection is still there.
    let (_sink, mut stream) = client.split();
    let mut received = 0;
    while received < statuses.len() - 1 {
        if let Message::Text(_) = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("ok")
        {
            received += 1
        }
    }
    let get = http()
        .get(gw.connection_url(&id))
        .send()
        .await
        .expect("get");
    assert_eq!(get.status().as_u16(), 200);
}

#[tokio::test]
async fn get_returns_connection_info() {
    let (gw, stub) = gateway_with_ids(
        "[routes.\"$default\"]\ntype = \"mock\"\nbody = \"ok\"\nroute_response = true",
    )
    .await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    send(&mut client, "activity").await;
    next_text(&mut client).await;
    let response = http()
        .get(gw.connection_url(&id))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.expect("json");
    let connected = body["connectedAt"].as_str().expect("iso");
    let active = body["lastActiveAt"].as_str().expect("iso");
    assert!(
        connected.ends_with('Z') && connected.len() == "2024-05-24T14:02:09.114Z".len(),
        "{connected}"
    );
    assert!(active > connected, "{active} > {connected}");
    assert_eq!(body["identity"]["sourceIp"], "127.0.0.1");
    assert!(
        body["identity"]
            .as_object()
            .expect("identity")
            .contains_key("userAgent")
    );
}

#[tokio::test]
async fn delete_closes_with_1000_and_disconnect_reports_it() {
    let (gw, stub) = gateway_with_disconnect().await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    assert_eq!(
        closed_by_delete(gw.connection_url(&id), &mut client).await,
        (1000, "Connection Closed Normally".to_owned())
    );
    let event = &stub.wait_events("/disconnect", 1).await[0];
    assert_disconnect_reports(event, 1000, "Connection Closed Normally");
    assert_eq!(event["requestContext"]["connectionId"], id.as_str());
    for method in [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        let response = http()
            .request(method, gw.connection_url(&id))
            .send()
            .await
            .expect("call");
        assert_error(&response, 410, "GoneException");
    }
}

#[tokio::test]
async fn delete_with_code_and_reason_closes_with_them_and_disconnect_reports_them() {
    let (gw, stub) = gateway_with_disconnect().await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let url = format!(
        "{}?code=4001&reason=kicked%20out%20%E2%9C%8B",
        gw.connection_url(&id)
    );
    assert_eq!(
        closed_by_delete(url, &mut client).await,
        (4001, "kicked out ✋".to_owned())
    );
    let event = &stub.wait_events("/disconnect", 1).await[0];
    assert_disconnect_reports(event, 4001, "kicked out ✋");
    // Without the stage, and a reason alone: 1000 with that reason.
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let url = format!(
        "http://{}/@connections/{}?reason=bye",
        gw.addr(),
        id.replace('=', "%3D")
    );
    assert_eq!(
        closed_by_delete(url, &mut client).await,
        (1000, "bye".to_owned())
    );
    let event = &stub.wait_events("/disconnect", 2).await[1];
    assert_disconnect_reports(event, 1000, "bye");
}

#[tokio::test]
async fn delete_with_a_bad_code_or_reason_is_400_and_the_connection_stays_open() {
    let (gw, stub) = gateway_with_ids("").await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let longest = "r".repeat(123);
    let too_long = "r".repeat(124);
    for (query, says) in [
        ("code=999".to_owned(), "1000 or 3000-4999, got 999"),
        ("code=1001".to_owned(), "got 1001"),
        ("code=1005".to_owned(), "got 1005"),
        ("code=2999".to_owned(), "got 2999"),
        ("code=5000&reason=x".to_owned(), "got 5000"),
        ("code=x".to_owned(), "got x"),
        (format!("code=4000&reason={too_long}"), "at most 123 bytes"),
        (format!("reason={too_long}"), "got 124 bytes"),
    ] {
        let response = http()
            .delete(format!("{}?{query}", gw.connection_url(&id)))
            .send()
            .await
            .expect("delete");
        assert_error(&response, 400, "BadRequestException");
        let message: Value = response.json().await.expect("json");
        let message = message["message"].as_str().expect("a message");
        assert!(message.contains(says), "{query}: {message}");
    }
    // Still open: it gets a POST, and a valid DELETE still closes it.
    assert_eq!(post_to(&gw, &id, "still here").await, 200);
    assert_eq!(next_text(&mut client).await, "still here");
    let url = format!("{}?code=3000&reason={longest}", gw.connection_url(&id));
    assert_eq!(closed_by_delete(url, &mut client).await, (3000, longest));
}

// --- SigV4 -----------------------------------------------------------------------------------

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn sigv4_config() -> String {
    format!(
        "[management]\nauth = \"sigv4\"\n[[management.credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\""
    )
}

/// Signs with the test key, as an AWS SDK does.
fn signed(
    method: &str,
    url: &str,
    body: &[u8],
    secret: &str,
    region: &str,
    at: SystemTime,
) -> reqwest::RequestBuilder {
    signed_as(method, url, body, AKID, secret, region, at)
}

#[tokio::test]
async fn sigv4_signed_calls_are_accepted_in_any_region() {
    let (gw, stub) = gateway_with_ids(&sigv4_config()).await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let url = gw.connection_url(&id);
    for region in ["eu-west-1", "us-east-1"] {
        let response = signed("POST", &url, b"signed", SECRET, region, SystemTime::now())
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), 200, "{region}");
        assert_eq!(next_text(&mut client).await, "signed");
    }
    let response = signed("GET", &url, b"", SECRET, "eu-west-1", SystemTime::now())
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn sigv4_bad_missing_or_stale_signatures_are_403() {
    let (gw, stub) = gateway_with_ids(&sigv4_config()).await;
    let (_client, id) = connect_with_id(&gw, &stub).await;
    let url = gw.connection_url(&id);
    let unsigned = http().post(&url).body("x").send().await.expect("post");
    assert_error(&unsigned, 403, "ForbiddenException");
    let wrong = signed(
        "POST",
        &url,
        b"x",
        "not-the-secret",
        "eu-west-1",
        SystemTime::now(),
    )
    .send()
    .await
    .expect("post");
    assert_error(&wrong, 403, "ForbiddenException");
    let stale = signed(
        "POST",
        &url,
        b"x",
        SECRET,
        "eu-west-1",
        SystemTime::now() - Duration::from_secs(16 * 60),
    );
    assert_error(
        &stale.send().await.expect("post"),
        403,
        "ForbiddenException",
    );
    // A signature over one body does not cover another.
    let request = signed(
        "POST",
        &url,
        b"original",
        SECRET,
        "eu-west-1",
        SystemTime::now(),
    )
    .body("tampered");
    assert_error(
        &request.send().await.expect("post"),
        403,
        "ForbiddenException",
    );
    let within = signed(
        "POST",
        &url,
        b"x",
        SECRET,
        "eu-west-1",
        SystemTime::now() - Duration::from_secs(14 * 60),
    );
    assert_eq!(within.send().await.expect("post").status().as_u16(), 200);
}

#[tokio::test]
async fn post_right_after_the_upgrade_is_delivered() {
    // The connection exists once $connect accepted it, before the client reads the 101.
    let (gw, stub) = gateway_with_ids("").await;
    for _ in 0..20 {
        let (mut client, id) = connect_with_id(&gw, &stub).await;
        let response = http()
            .post(gw.connection_url(&id))
            .body("first")
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(next_text(&mut client).await, "first");
    }
}
