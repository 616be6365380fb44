//! Security: allowed origins, connection and rate limits, the handshake timeout, TLS from files
//! (and its reload), management tokens, operations per credential, the management rate limit and
//! the separate management listener — each with real clients over real sockets on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use wsgate::Gateway;

use crate::common::*;

// --- helpers ---------------------------------------------------------------------------------

/// A refused upgrade: its status and `Retry-After`.
type Refused = (u16, Option<String>);

/// Upgrades at `url`, with an `Origin` when given: the open client, or the refusal.
async fn try_upgrade(url: &str, origin: Option<&str>) -> Result<Client, Refused> {
    let headers: Vec<(&str, &str)> = origin
        .map(|origin| ("origin", origin))
        .into_iter()
        .collect();
    try_upgrade_with(url, &headers).await
}

/// Upgrades at `url` with these extra headers (a name may repeat): the open client, or the refusal.
async fn try_upgrade_with(url: &str, headers: &[(&str, &str)]) -> Result<Client, Refused> {
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    let attempt = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("the upgrade is answered in time");
    match attempt {
        Ok((client, response)) => {
            assert_eq!(response.status().as_u16(), 101);
            Ok(client)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err((
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        )),
        Err(other) => panic!("the upgrade failed without an HTTP answer: {other}"),
    }
}

/// Upgrades until one is accepted (a slot frees asynchronously), refused with `status` meanwhile.
async fn upgrade_once_freed(url: &str, status: u16) -> Client {
    let deadline = Instant::now() + WAIT;
    loop {
        match try_upgrade(url, None).await {
            Ok(client) => return client,
            Err((refused, _)) if refused == status && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(other) => panic!("expected the slot to free, got {other:?}"),
        }
    }
}

/// How long until the server closes `stream` (EOF or reset), reading and discarding anything it
/// sends; panics past `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration, what: &str) -> Duration {
    let start = Instant::now();
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server did not drop {what} within {within:?}"));
    start.elapsed()
}

/// Sends `text` and expects it echoed back.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(client: &mut WebSocketStream<S>, text: &str) {
    client.send(Message::text(text)).await.expect("send");
    match next(client).await {
        Message::Text(got) => assert_eq!(got.as_str(), text),
        other => panic!("expected the echo, got {other:?}"),
    }
}

fn assert_error(response: &reqwest::Response, status: u16, kind: &str) {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["x-amzn-errortype"], kind);
}

/// A folder under the system's temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "wsgate-security-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for localhost and 127.0.0.1, as `name.crt` and `name.key` (PEM) in
/// `dir`; returns the paths and the certificate.
pub(crate) fn write_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, CertificateDer<'static>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    (cert, key, certified.cert.der().clone())
}

pub(crate) fn tls_toml(cert: &Path, key: &Path) -> String {
    format!(
        "[gateway.tls]\ncert = '{}'\nkey = '{}'",
        cert.display(),
        key.display()
    )
}

/// `[gateway.tls]` that also serves plain HTTP on its port.
fn accepting_plaintext(cert: &Path, key: &Path) -> String {
    format!("{}\nplaintext = 'accept'", tls_toml(cert, key))
}

/// A TLS client that trusts only `trusted` and speaks only `version`.
fn connector(
    trusted: &CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).expect("a trust anchor");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

type TlsClient = WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// `wss://localhost:PORT/dev` through `connector`; the TLS or WebSocket error as text.
async fn wss_connect(addr: SocketAddr, connector: &TlsConnector) -> Result<TlsClient, String> {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("the TLS handshake ends in time")
        .map_err(|e| format!("TLS: {e}"))?;
    let url = format!("wss://localhost:{}/dev", addr.port());
    let (client, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tls))
        .await
        .expect("the upgrade ends in time")
        .map_err(|e| format!("WebSocket: {e}"))?;
    Ok(client)
}

fn negotiated(client: &TlsClient) -> Option<rustls::ProtocolVersion> {
    client.get_ref().get_ref().1.protocol_version()
}

/// A gateway whose `$connect` goes to a stub (to learn connection ids) and whose `$default`
/// echoes, with `extra` TOML.
async fn gateway_with_ids(extra: &str) -> (Running, Stub) {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .http("$connect", &stub.url("/connect"), false)
        .mock("$default", 200, "${request.body}", true)
        .toml(extra)
        .start()
        .await;
    (gw, stub)
}

const TOKEN: &str = "backend-token-0123456789";
const READER_TOKEN: &str = "reader-token-0123456789";

fn tokens_toml() -> String {
    format!(
        "[management]\nauth = \"token\"\n\
         [[management.tokens]]\nname = \"backend\"\ntoken = \"{TOKEN}\"\n\
         [[management.tokens]]\nname = \"reader\"\ntoken = \"{READER_TOKEN}\"\noperations = [\"get_connection\"]"
    )
}

/// Signs now, in us-east-1, with this key.
fn signed(
    method: &str,
    url: &str,
    body: &[u8],
    access_key_id: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    signed_as(
        method,
        url,
        body,
        access_key_id,
        secret,
        "us-east-1",
        SystemTime::now(),
    )
}

// --- origins ---------------------------------------------------------------------------------

#[tokio::test]
async fn allowed_origins_gate_browsers_and_let_other_clients_through() {
    // The first `toml` call lands inside [gateway].
    let gw = TestGateway::builder()
        .toml("allowed_origins = [\"https://app.example\"]")
        .mock("$default", 200, "${request.body}", true)
        .start()
        .await;
    let url = gw.ws_url();
    let mut listed = try_upgrade(&url, Some("https://app.example"))
        .await
        .expect("a listed origin upgrades");
    echo(&mut listed, "from the app").await;
    try_upgrade(&url, Some("HTTPS://App.Example"))
        .await
        .expect("origins compare without regard to case");
    for other in [
        "https://evil.example",
        "https://app.example:8443",
        "http://app.example",
        "null",
    ] {
        assert_eq!(
            try_upgrade(&url, Some(other)).await.err().map(|r| r.0),
            Some(403),
            "{other}"
        );
    }
    let mut plain = try_upgrade(&url, None)
        .await
        .expect("a client without Origin upgrades");
    echo(&mut plain, "no browser").await;

    let any = TestGateway::builder()
        .toml("allowed_origins = [\"*\"]")
        .start()
        .await;
    for origin in [Some("https://evil.example"), Some("null"), None] {
        try_upgrade(&any.ws_url(), origin)
            .await
            .unwrap_or_else(|r| panic!("\"*\" allows {origin:?}, got {r:?}"));
    }
}

// --- connection limits -----------------------------------------------------------------------

#[tokio::test]
async fn max_connections_refuses_with_503_until_a_slot_frees() {
    let gw = TestGateway::builder()
        .mock("$default", 200, "${request.body}", true)
        .toml("[limits]\nmax_connections = 2\nnew_connections_per_ip_per_second = 0")
        .start()
        .await;
    let url = gw.ws_url();
    let mut first = try_upgrade(&url, None).await.expect("first");
    let mut second = try_upgrade(&url, None).await.expect("second");
    assert_eq!(try_upgrade(&url, None).await.err().map(|r| r.0), Some(503));
    echo(&mut second, "still served").await;

    first.close(None).await.expect("close");
    let mut third = upgrade_once_freed(&url, 503).await;
    echo(&mut third, "admitted").await;
    assert_eq!(
        try_upgrade(&url, None).await.err().map(|r| r.0),
        Some(503),
        "two are open again"
    );
}

/// `{"action":"whoami"}` on `client` (a mock answering `${context.identity.sourceIp}
/// ${context.connectionId}`): the `identity.sourceIp` of its events, and its id.
async fn whoami(client: &mut Client) -> (String, String) {
    client
        .send(Message::text(r#"{"action":"whoami"}"#))
        .await
        .expect("send");
    let answer = next_text(client).await;
    let (ip, id) = answer.split_once(' ').expect("ip and id");
    (ip.to_owned(), id.to_owned())
}

async fn source_ip(client: &mut Client) -> String {
    whoami(client).await.0
}

#[tokio::test]
async fn trusted_proxies_name_the_client_for_limits_and_source_ip() {
    let limits = "[limits]\nmax_connections_per_ip = 1\nnew_connections_per_ip_per_second = 0\nexempt_loopback = false";
    let with_whoami = |builder: TestGateway| {
        builder.mock(
            "whoami",
            200,
            "${context.identity.sourceIp} ${context.connectionId}",
            true,
        )
    };
    // The test, on 127.0.0.1, plays the load balancer.
    let gw = with_whoami(
        TestGateway::builder()
            .toml("trusted_proxies = [\"127.0.0.0/8\", \"::1\"]")
            .toml(limits),
    )
    .start()
    .await;
    let url = gw.ws_url();
    let xff = |value| [("x-forwarded-for", value)];
    let mut a = try_upgrade_with(&url, &xff("203.0.113.1"))
        .await
        .expect("a");
    let (ip, a_id) = whoami(&mut a).await;
    assert_eq!(ip, "203.0.113.1");
    // What the client wrote itself (left of what the balancer appended) is not believed.
    let mut b = try_upgrade_with(&url, &xff("203.0.113.1, 203.0.113.2"))
        .await
        .expect("b is another client");
    assert_eq!(source_ip(&mut b).await, "203.0.113.2");
    // Two balancers, two headers: the right-most address that is not a proxy.
    let refused = try_upgrade_with(
        &url,
        &[
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", "127.0.0.9"),
        ],
    )
    .await
    .expect_err("203.0.113.1 already has its one connection");
    assert_eq!(refused.0, 429);
    // The balancer's own connections count as its own.
    let mut own = try_upgrade(&url, None).await.expect("no header: the peer");
    assert_eq!(source_ip(&mut own).await, "127.0.0.1");
    assert_eq!(try_upgrade(&url, None).await.err().map(|r| r.0), Some(429));

    // The management API reports the forwarded address too.
    let info: serde_json::Value = http()
        .get(gw.connection_url(&a_id))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(info["identity"]["sourceIp"], "203.0.113.1");

    // Without trusted proxies the header is ignored: both are 127.0.0.1, the second is refused.
    let plain = with_whoami(TestGateway::builder().toml(limits))
        .start()
        .await;
    let url = plain.ws_url();
    let mut first = try_upgrade_with(&url, &xff("203.0.113.1"))
        .await
        .expect("first");
    assert_eq!(source_ip(&mut first).await, "127.0.0.1");
    let refused = try_upgrade_with(&url, &xff("203.0.113.2"))
        .await
        .expect_err("the same address");
    assert_eq!(refused.0, 429);
}

#[tokio::test]
async fn max_connections_per_ip_refuses_with_429_and_retry_after() {
    let gw = TestGateway::builder()
        .toml("[limits]\nmax_connections_per_ip = 2\nnew_connections_per_ip_per_second = 0\nexempt_loopback = false")
        .start()
        .await;
    let url = gw.ws_url();
    let mut first = try_upgrade(&url, None).await.expect("first");
    let _second = try_upgrade(&url, None).await.expect("second");
    let (status, retry_after) = try_upgrade(&url, None).await.expect_err("refused");
    assert_eq!(status, 429);
    assert_eq!(retry_after.as_deref(), Some("1"));

    first.close(None).await.expect("close");
    let _third = upgrade_once_freed(&url, 429).await;
    assert_eq!(try_upgrade(&url, None).await.err().map(|r| r.0), Some(429));
}

#[tokio::test]
async fn new_connections_per_ip_per_second_refuses_a_burst_then_refills() {
    let gw = TestGateway::builder()
        .toml("[limits]\nnew_connections_per_ip_per_second = 3\nmax_connections_per_ip = 100\nexempt_loopback = false")
        .start()
        .await;
    let url = gw.ws_url();
    let mut open = Vec::new();
    // Tokens come back at 3 a second: a burst of 6 gets 3, plus one per third of a second it took.
    for round in 0..2 {
        let start = Instant::now();
        let mut results = Vec::new();
        for _ in 0..6 {
            results.push(try_upgrade(&url, None).await);
        }
        let took = start.elapsed().as_secs_f64();
        let accepted = results.iter().filter(|r| r.is_ok()).count();
        assert!(
            results[..3].iter().all(Result::is_ok),
            "round {round}: the first 3 of a burst are accepted"
        );
        assert!(
            accepted as f64 <= 3.0 + (took * 3.0).ceil(),
            "round {round}: {accepted} accepted in {took}s"
        );
        assert!(accepted < 6, "round {round}: some of the burst is refused");
        for result in results {
            match result {
                Ok(client) => open.push(client),
                Err((status, retry_after)) => {
                    assert_eq!(status, 429);
                    assert_eq!(retry_after.as_deref(), Some("1"));
                }
            }
        }
        if round == 0 {
            // A full bucket again after a second.
            tokio::time::sleep(Duration::from_millis(1050)).await;
        }
    }
}

// --- the handshake timeout -------------------------------------------------------------------

#[tokio::test]
async fn handshake_timeout_drops_slow_and_silent_clients() {
    let dir = TempDir::new();
    let (cert, key, trusted) = write_cert(&dir.0, "server");
    let limits = "[limits]\nhandshake_timeout = \"1s\"";
    let plain = TestGateway::builder().toml(limits).start().await;
    let tls = TestGateway::builder()
        .toml(limits)
        .toml(&tls_toml(&cert, &key))
        .start()
        .await;
    let within = Duration::from_secs(5);
    // A WebSocket opened before, to check it outlives the timeout.
    let mut client = try_upgrade(&plain.ws_url(), None).await.expect("upgrades");

    // Half a request head, then nothing.
    let partial = async {
        let mut stream = TcpStream::connect(plain.addr()).await.expect("connect");
        stream
            .write_all(b"GET /dev HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            .await
            .expect("write");
        closed_within(&mut stream, within, "a partial head").await
    };
    // Nothing at all, on a plain and on a TLS gateway (which waits for the first byte).
    let silent = async {
        let mut stream = TcpStream::connect(plain.addr()).await.expect("connect");
        closed_within(&mut stream, within, "a silent plain client").await
    };
    let silent_tls = async {
        let mut stream = TcpStream::connect(tls.addr()).await.expect("connect");
        closed_within(&mut stream, within, "a silent client of TLS").await
    };
    // The first bytes of a TLS record, then nothing.
    let stalled_tls = async {
        let mut stream = TcpStream::connect(tls.addr()).await.expect("connect");
        stream.write_all(&[0x16, 0x03, 0x01]).await.expect("write");
        closed_within(&mut stream, within, "a stalled TLS handshake").await
    };
    // A finished TLS handshake, then nothing.
    let idle_tls = async {
        let tcp = TcpStream::connect(tls.addr()).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("server name");
        let mut stream = connector(&trusted, &rustls::version::TLS13)
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let start = Instant::now();
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(within, stream.read(&mut buffer)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "the server did not drop a client silent after its TLS handshake within {within:?}"
        );
        start.elapsed()
    };
    let dropped = tokio::join!(partial, silent, silent_tls, stalled_tls, idle_tls);
    for (what, after) in [
        ("a partial head", dropped.0),
        ("a silent plain client", dropped.1),
        ("a silent client of TLS", dropped.2),
        ("a stalled TLS handshake", dropped.3),
        ("an idle TLS session", dropped.4),
    ] {
        assert!(
            after >= Duration::from_millis(500),
            "{what} was dropped after {after:?}, before the timeout"
        );
    }

    // The open WebSocket is not affected, and prompt clients still get in.
    client
        .send(Message::Ping(b"alive".to_vec().into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a pong in time")
        .expect("open")
        .expect("no error");
    assert_eq!(pong, Message::Pong(b"alive".to_vec().into()));
    wss_connect(tls.addr(), &connector(&trusted, &rustls::version::TLS13))
        .await
        .expect("wss upgrades");
    try_upgrade(&plain.ws_url(), None).await.expect("upgrades");
}

#[tokio::test]
async fn sixty_connections_from_one_address_with_a_limit_of_fifty_refuse_ten() {
    let gw = TestGateway::builder()
        .toml("[limits]\nmax_connections_per_ip = 50\nnew_connections_per_ip_per_second = 0\nexempt_loopback = false")
        .start()
        .await;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let (stream, status, head) = raw_upgrade(gw.addr(), "/dev").await;
        match status {
            101 => open.push(stream),
            429 => {
                assert!(
                    head.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"),
                    "{head}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {head}"),
        }
    }
    assert_eq!((open.len(), refused), (50, 10));
    assert_eq!(gw.gateway.open_connections(), 50);
}

// --- TLS -------------------------------------------------------------------------------------

#[tokio::test]
async fn tls_from_files_serves_wss_and_ws_and_reloads_the_certificate() {
    let dir = TempDir::new();
    let (cert, key, old_cert) = write_cert(&dir.0, "old");
    let stub = Stub::start().await;
    let builder = || {
        TestGateway::builder()
            .http("$connect", &stub.url("/connect"), false)
            .mock("$default", 200, "${request.body}", true)
    };
    let gw = builder()
        .toml(&accepting_plaintext(&cert, &key))
        .start()
        .await;
    let addr = gw.addr();
    let proto = |i: usize| stub.events("/connect")[i]["headers"]["X-Forwarded-Proto"].clone();

    // TLS 1.3 and 1.2 both negotiate.
    let mut tls13 = wss_connect(addr, &connector(&old_cert, &rustls::version::TLS13))
        .await
        .expect("wss over TLS 1.3");
    assert_eq!(negotiated(&tls13), Some(rustls::ProtocolVersion::TLSv1_3));
    echo(&mut tls13, "over tls 1.3").await;
    let mut tls12 = wss_connect(addr, &connector(&old_cert, &rustls::version::TLS12))
        .await
        .expect("wss over TLS 1.2");
    assert_eq!(negotiated(&tls12), Some(rustls::ProtocolVersion::TLSv1_2));
    echo(&mut tls12, "over tls 1.2").await;

    // Plain ws:// on the same port.
    let mut plain = gw.connect().await;
    send(&mut plain, "in the clear").await;
    assert_eq!(next_text(&mut plain).await, "in the clear");
    stub.wait_events("/connect", 3).await;
    assert_eq!(
        (proto(0), proto(1), proto(2)),
        ("https".into(), "https".into(), "http".into())
    );

    // A reload naming files that do not exist fails and leaves the certificate alone.
    let missing = dir.0.join("missing.crt");
    let error = gw
        .gateway
        .reload(
            builder()
                .toml(&accepting_plaintext(&missing, &key))
                .config(),
        )
        .expect_err("a missing certificate is refused");
    assert!(error.to_string().contains("gateway.tls"), "{error}");
    let mut same = wss_connect(addr, &connector(&old_cert, &rustls::version::TLS13))
        .await
        .expect("the old certificate is still served");
    echo(&mut same, "same cert").await;

    // A new certificate in new files, swapped in by a reload.
    let (new_cert_file, new_key_file, new_cert) = write_cert(&dir.0, "new");
    gw.gateway
        .reload(
            builder()
                .toml(&accepting_plaintext(&new_cert_file, &new_key_file))
                .config(),
        )
        .expect("reloads");

    // Open connections keep their session ...
    echo(&mut tls13, "after the reload").await;
    echo(&mut tls12, "after the reload too").await;
    // ... new ones get the new certificate ...
    let mut fresh = wss_connect(addr, &connector(&new_cert, &rustls::version::TLS13))
        .await
        .expect("the new certificate is served");
    echo(&mut fresh, "new cert").await;
    // ... which a client trusting only the old one refuses.
    let error = wss_connect(addr, &connector(&old_cert, &rustls::version::TLS13))
        .await
        .expect_err("the old certificate is no longer served");
    assert!(error.starts_with("TLS"), "{error}");
    let mut plain_again = gw.connect().await;
    send(&mut plain_again, "still clear").await;
    assert_eq!(next_text(&mut plain_again).await, "still clear");
}

// --- management credentials ------------------------------------------------------------------

#[tokio::test]
async fn management_tokens_authenticate_and_limit_operations() {
    let (gw, stub) = gateway_with_ids(&tokens_toml()).await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let url = gw.connection_url(&id);

    let anonymous = http().post(&url).body("x").send().await.expect("post");
    assert_error(&anonymous, 401, "UnauthorizedException");
    let wrong = http()
        .post(&url)
        .bearer_auth("not-the-token-0123456789")
        .body("x")
        .send()
        .await
        .expect("post");
    assert_error(&wrong, 401, "UnauthorizedException");
    let not_bearer = http()
        .post(&url)
        .header("authorization", format!("Basic {TOKEN}"))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_error(&not_bearer, 401, "UnauthorizedException");

    let right = http()
        .post(&url)
        .bearer_auth(TOKEN)
        .body("pushed")
        .send()
        .await
        .expect("post");
    assert_eq!(right.status().as_u16(), 200);
    assert_eq!(next_text(&mut client).await, "pushed");

    let limited = http()
        .post(&url)
        .bearer_auth(READER_TOKEN)
        .body("x")
        .send()
        .await
        .expect("post");
    assert_error(&limited, 403, "ForbiddenException");
    assert!(
        limited
            .text()
            .await
            .expect("body")
            .contains("post_to_connection")
    );
    let delete = http()
        .delete(&url)
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .expect("delete");
    assert_error(&delete, 403, "ForbiddenException");
    let get = http()
        .get(&url)
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(get.status().as_u16(), 200);
    // Nothing the refused calls asked for happened.
    echo(&mut client, "still open").await;
}

#[tokio::test]
async fn a_token_env_that_is_not_set_stops_the_start() {
    let var = format!("WSGATE_TEST_UNSET_{:016X}", rand::random::<u64>());
    let config = TestGateway::builder()
        .toml(&format!(
            "[management]\nauth = \"token\"\n[[management.tokens]]\nname = \"env\"\ntoken_env = \"{var}\""
        ))
        .config();
    let error = Gateway::start(config)
        .await
        .expect_err("the start fails")
        .to_string();
    assert!(error.contains("management.tokens[0].token_env"), "{error}");
    assert!(error.contains(&var), "{error}");
}

#[tokio::test]
async fn sigv4_credentials_are_limited_to_their_operations() {
    const POSTER: &str = "AKIDPOSTONLY";
    const ADMIN: &str = "AKIDADMIN";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let (gw, stub) = gateway_with_ids(&format!(
        "[management]\nauth = \"sigv4\"\n\
         [[management.credentials]]\naccess_key_id = \"{POSTER}\"\nsecret_access_key = \"{SECRET}\"\noperations = [\"post_to_connection\"]\n\
         [[management.credentials]]\naccess_key_id = \"{ADMIN}\"\nsecret_access_key = \"{SECRET}\""
    ))
    .await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let url = gw.connection_url(&id);

    let get = signed("GET", &url, b"", POSTER, SECRET)
        .send()
        .await
        .expect("get");
    assert_error(&get, 403, "ForbiddenException");
    assert!(get.text().await.expect("body").contains("get_connection"));
    let delete = signed("DELETE", &url, b"", POSTER, SECRET)
        .send()
        .await
        .expect("delete");
    assert_error(&delete, 403, "ForbiddenException");

    let post = signed("POST", &url, b"signed", POSTER, SECRET)
        .send()
        .await
        .expect("post");
    assert_eq!(post.status().as_u16(), 200);
    assert_eq!(next_text(&mut client).await, "signed");

    let admin_get = signed("GET", &url, b"", ADMIN, SECRET)
        .send()
        .await
        .expect("get");
    assert_eq!(
        admin_get.status().as_u16(),
        200,
        "a key without operations may call all"
    );
}

#[tokio::test]
async fn management_requests_per_second_answers_429_limit_exceeded() {
    let (gw, stub) = gateway_with_ids(&format!(
        "{}\n[limits]\nmanagement_requests_per_second = 5",
        tokens_toml()
    ))
    .await;
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    let url = gw.connection_url(&id);

    let start = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = http()
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        if response.status().as_u16() == 429 {
            assert_error(&response, 429, "LimitExceededException");
        }
        statuses.push(response.status().as_u16());
    }
    let took = start.elapsed().as_secs_f64();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        ok as f64 <= 5.0 + (took * 5.0).ceil(),
        "{statuses:?} in {took}s"
    );
    assert!(ok < statuses.len(), "{statuses:?}");

    // Another credential has its own budget, and the connection is unaffected.
    let other = http()
        .get(&url)
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(other.status().as_u16(), 200);
    echo(&mut client, "unaffected").await;
    // A token comes back within a fifth of a second.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let post = http()
        .post(&url)
        .bearer_auth(TOKEN)
        .body("later")
        .send()
        .await
        .expect("post");
    assert_eq!(post.status().as_u16(), 200);
    assert_eq!(next_text(&mut client).await, "later");
}

// --- the management listener -----------------------------------------------------------------

#[tokio::test]
async fn a_separate_management_listener_takes_the_management_api_off_the_public_port() {
    let (gw, stub) = gateway_with_ids("[management]\nlisten = \"127.0.0.1:0\"").await;
    let management = gw.gateway.management_addr().expect("a management address");
    assert_ne!(management, gw.addr());
    // Upgrades on the public port work.
    let (mut client, id) = connect_with_id(&gw, &stub).await;
    echo(&mut client, "public").await;
    let encoded = id.replace('=', "%3D");

    // Management paths on the public port are forbidden, with and without the stage.
    for url in [
        gw.connection_url(&id),
        format!("http://{}/@connections/{encoded}", gw.addr()),
    ] {
        let public = http().post(&url).body("x").send().await.expect("post");
        assert_error(&public, 403, "ForbiddenException");
    }
    let public_get = http()
        .get(gw.connection_url(&id))
        .send()
        .await
        .expect("get");
    assert_error(&public_get, 403, "ForbiddenException");

    // The management port serves them.
    let post = http()
        .post(format!("http://{management}/dev/@connections/{encoded}"))
        .body("via management")
        .send()
        .await
        .expect("post");
    assert_eq!(post.status().as_u16(), 200);
    assert_eq!(next_text(&mut client).await, "via management");
    let get = http()
        .get(format!("http://{management}/@connections/{encoded}"))
        .send()
        .await
        .expect("get");
    assert_eq!(get.status().as_u16(), 200);

    // ... and nothing else: no upgrades there.
    let (_stream, status, head) = raw_upgrade(management, "/dev").await;
    assert_eq!(status, 403, "{head}");
    let refused = try_upgrade(&format!("ws://{management}/dev"), None)
        .await
        .err()
        .map(|r| r.0);
    assert_eq!(refused, Some(403));
    let connects = stub.events("/connect").len();
    assert_eq!(connects, 1, "no $connect ran for the refused upgrades");
    // The public port still upgrades.
    let mut second = try_upgrade(&gw.ws_url(), None)
        .await
        .expect("public upgrade");
    echo(&mut second, "public again").await;
}

#[tokio::test]
async fn failed_management_credentials_are_rate_limited_by_address() {
    let (gw, stub) = gateway_with_ids(&format!(
        "{}\n[limits]\nmanagement_requests_per_second = 3",
        tokens_toml()
    ))
    .await;
    let (_client, id) = connect_with_id(&gw, &stub).await;
    let url = gw.connection_url(&id);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = http()
            .get(&url)
            .bearer_auth("guessed-token-0123456789")
            .send()
            .await
            .expect("get");
        statuses.push(response.status().as_u16());
    }
    assert!(statuses[..3].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses.contains(&429), "guessing is limited: {statuses:?}");
    // The right token is counted apart (and `BEARER` works: the scheme is case-insensitive).
    let response = http()
        .get(&url)
        .header("authorization", format!("BEARER {TOKEN}"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
}
