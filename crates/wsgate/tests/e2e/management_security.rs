//! Attacks on the management API, each performed and shown to fail: a web page of another site
//! driving an unauthenticated API, DNS rebinding, bodies that never arrive, credential
//! guessing, unbounded group joins, and replayed SigV4 signatures.

use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

const AKID: &str = "AKIDREPLAY";
const SECRET: &str = "replay-secret";

async fn echo_gateway(extra: &str) -> Running {
    TestGateway::builder()
        .toml(extra)
        .mock("$default", 200, "${request.body}", true)
        .start()
        .await
}

/// `POST @broadcast` with these headers; the status.
async fn broadcast_with(gw: &Running, headers: &[(&str, &str)]) -> u16 {
    let mut request = http()
        .post(format!("http://{}/dev/@broadcast", gw.addr()))
        .body("from a page");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("answers").status().as_u16()
}

#[tokio::test]
async fn a_page_of_another_site_cannot_drive_an_unauthenticated_management_api() {
    let gw = echo_gateway("").await;
    let mut client = gw.connect().await;
    // What `fetch(url, {method: "POST", mode: "no-cors"})` on https://evil.example sends.
    let refused = [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![
            ("origin", "http://localhost:3000"),
            ("sec-fetch-site", "cross-site"),
        ],
    ];
    for headers in &refused {
        assert_eq!(broadcast_with(&gw, headers).await, 403, "{headers:?}");
    }
    // Pages served from this machine, and clients that are not browsers, are answered.
    for headers in [
        vec![
            ("origin", "http://localhost:3000"),
            ("sec-fetch-site", "same-site"),
        ],
        vec![("origin", "http://127.0.0.1:8000")],
        vec![],
    ] {
        assert_eq!(broadcast_with(&gw, &headers).await, 200, "{headers:?}");
    }
    // The client got the three allowed broadcasts, none of the refused ones.
    for _ in 0..3 {
        assert_eq!(next_text(&mut client).await, "from a page");
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), next_text(&mut client))
            .await
            .is_err(),
        "nothing else arrived"
    );
}

#[tokio::test]
async fn a_rebound_dns_name_cannot_read_the_connection_list() {
    let gw = echo_gateway("domain_name = \"chat.example.com\"").await;
    let _client = gw.connect().await;
    let list = |host: &'static str| {
        http()
            .get(format!("http://{}/dev/@connections", gw.addr()))
            .header("host", host)
            .send()
    };
    let rebound = list("rebind.attacker.example:8080").await.expect("answers");
    assert_eq!(rebound.status(), 403);
    assert_eq!(rebound.headers()["x-amzn-ErrorType"], "ForbiddenException");
    let message = rebound.text().await.expect("body");
    assert!(message.contains("Host"), "{message}");
    for host in ["localhost:8080", "127.0.0.1", "chat.example.com"] {
        assert_eq!(list(host).await.expect("answers").status(), 200, "{host}");
    }
}

/// Sends a management request head whose Content-Length is 10 bytes more than the body that
/// follows; answers the status and whether the gateway then closed the connection.
async fn short_body(gw: &Running, authorization: Option<&str>) -> (u16, bool) {
    let mut stream = TcpStream::connect(gw.addr()).await.expect("connects");
    let body = "x".repeat(100);
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let head = format!(
        "POST /dev/@broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len() + 10
    );
    stream.write_all(head.as_bytes()).await.expect("writes");
    let head = read_head(&mut stream).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .is_ok();
    (status, closed)
}

#[tokio::test]
async fn credentials_that_cannot_be_valid_are_refused_before_the_body_is_read() {
    let tokens = "[management]\nauth = \"token\"\nauth_failures_per_second = 0\n\
                  [[management.tokens]]\nname = \"backend\"\ntoken = \"backend-token-0123456789\"";
    let gw = echo_gateway(tokens).await;
    let attempts: Vec<_> = (0..100)
        .map(|i| {
            let authorization = (i % 2 == 0).then_some("Bearer guessed-token-0123456789");
            short_body(&gw, authorization)
        })
        .collect();
    let started = tokio::time::Instant::now();
    for (status, closed) in futures_util::future::join_all(attempts).await {
        assert_eq!(status, 401);
        assert!(closed, "the connection is closed, its body unread");
    }
    // Refused from the headers: nobody waited for the 10 bytes that never come.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn sigv4_with_an_unknown_key_or_a_stale_date_is_refused_from_its_headers() {
    let gw = echo_gateway(&format!(
        "[management]\nauth = \"sigv4\"\n[[management.credentials]]\n\
         access_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\""
    ))
    .await;
    let unknown = "AWS4-HMAC-SHA256 Credential=AKIDUNKNOWN/20261206/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
    assert_eq!(short_body(&gw, Some(unknown)).await, (403, true));
    let other_service = "AWS4-HMAC-SHA256 Credential=AKIDREPLAY/20261206/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";
    assert_eq!(short_body(&gw, Some(other_service)).await, (403, true));
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_after_body_timeout() {
    let gw = echo_gateway("[management]\nbody_timeout = \"300ms\"").await;
    let started = tokio::time::Instant::now();
    assert_eq!(short_body(&gw, None).await, (408, true));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn bodies_on_the_way_are_capped_per_address() {
    let gw = echo_gateway("[management]\nmax_body_reads_per_ip = 2\nbody_timeout = \"2s\"").await;
    let stalled = || short_body(&gw, None);
    let (first, second, third) = tokio::join!(stalled(), stalled(), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        short_body(&gw, None).await
    });
    assert_eq!(third.0, 429, "a third body from the address is refused");
    assert_eq!((first.0, second.0), (408, 408));
}

#[tokio::test]
async fn failed_authentications_are_limited_per_address_by_default() {
    let gw = echo_gateway(
        "[management]\nauth = \"token\"\n[[management.tokens]]\nname = \"b\"\ntoken = \"backend-token-0123456789\"",
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = http()
            .get(format!("http://{}/dev/@connections", gw.addr()))
            .bearer_auth("guessed-token-0123456789")
            .send()
            .await
            .expect("answers");
        statuses.push(response.status().as_u16());
    }
    // The default: a burst of 5 failures a second from one address, loopback included.
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn a_join_past_max_groups_per_connection_is_a_400_naming_the_limit() {
    let gw = echo_gateway("[limits]\nmax_groups_per_connection = 2").await;
    let mut client = gw.connect().await;
    send(&mut client, "{\"action\":\"x\"}").await;
    let _ = next_text(&mut client).await;
    let ids: serde_json::Value = http()
        .get(format!("http://{}/dev/@connections", gw.addr()))
        .send()
        .await
        .expect("lists")
        .json()
        .await
        .expect("json");
    let id = ids["items"][0]["connectionId"]
        .as_str()
        .expect("an id")
        .to_owned();
    let join = |group: &'static str| {
        http()
            .put(format!(
                "http://{}/dev/@groups/{group}/connections/{}",
                gw.addr(),
                id.replace('=', "%3D")
            ))
            .send()
    };
    assert_eq!(join("a").await.expect("joins").status(), 204);
    assert_eq!(join("b").await.expect("joins").status(), 204);
    assert_eq!(
        join("a").await.expect("again").status(),
        204,
        "already in it"
    );
    let third = join("c").await.expect("answers");
    assert_eq!(third.status(), 400);
    assert_eq!(third.headers()["x-amzn-ErrorType"], "BadRequestException");
    let message = third.text().await.expect("body");
    assert!(message.contains("max_groups_per_connection"), "{message}");
}

async fn replay_twice(reject: bool) -> (u16, u16) {
    let gw = echo_gateway(&format!(
        "[management]\nauth = \"sigv4\"\nreject_replayed_signatures = {reject}\n\
         [[management.credentials]]\naccess_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\""
    ))
    .await;
    let url = format!("http://{}/dev/@broadcast", gw.addr());
    let request = signed_as(
        "POST",
        &url,
        b"once",
        AKID,
        SECRET,
        "us-east-1",
        SystemTime::now(),
    )
    .build()
    .expect("builds");
    let again = request.try_clone().expect("clones");
    let first = http().execute(request).await.expect("answers").status();
    let second = http().execute(again).await.expect("answers").status();
    (first.as_u16(), second.as_u16())
}

#[tokio::test]
async fn replayed_signatures_are_refused_with_reject_replayed_signatures() {
    assert_eq!(replay_twice(true).await, (200, 403));
    // The default is API Gateway's: a signature is good for the whole skew window.
    assert_eq!(replay_twice(false).await, (200, 200));
}
