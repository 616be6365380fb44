//! Test support: a real gateway on port 0, a stub backend on port 0 that records the events it
//! receives, and a WebSocket client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use wsgate::{Config, Gateway, RunningGateway};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(10);

/// What the stub answers on one path.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// This status and JSON body.
    Json(u16, Value),
    /// This status and raw text body.
    Text(u16, String),
    /// Wait, then behave.
    Delay(Duration, Box<Behavior>),
}

#[derive(Default)]
struct StubState {
    events: Mutex<Vec<(String, Value)>>,
    behaviors: Mutex<HashMap<String, Behavior>>,
    arrived: Notify,
}

/// A backend on 127.0.0.1:0 that records every event POSTed to it.
#[derive(Clone)]
pub struct Stub {
    addr: SocketAddr,
    state: Arc<StubState>,
}

async fn record(State(state): State<Arc<StubState>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 24)
        .await
        .unwrap_or_default();
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let behavior = state.behaviors.lock().expect("lock").get(&path).cloned();
    state
        .events
        .lock()
        .expect("lock")
        .push((path, event.clone()));
    state.arrived.notify_waiters();
    let mut behavior = behavior.unwrap_or(Behavior::Json(200, json!({"statusCode": 200})));
    loop {
        match behavior {
            Behavior::Delay(after, then) => {
                tokio::time::sleep(after).await;
                behavior = *then;
            }
            Behavior::Json(status, value) => {
                return (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    axum::Json(value),
                )
                    .into_response();
            }
            Behavior::Text(status, text) => {
                return (
                    axum::http::StatusCode::from_u16(status).expect("status"),
                    text,
                )
                    .into_response();
            }
        }
    }
}

impl Stub {
    pub async fn start() -> Self {
        let state = Arc::new(StubState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(record).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.expect("stub serves") });
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn on(&self, path: &str, behavior: Behavior) {
        self.state
            .behaviors
            .lock()
            .expect("lock")
            .insert(path.to_owned(), behavior);
    }

    /// Events received on `path` so far.
    pub fn events(&self, path: &str) -> Vec<Value> {
        self.state
            .events
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Waits until `path` has received `n` events and returns them.
    pub async fn wait_events(&self, path: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.state.arrived.notified();
            let events = self.events(path);
            if events.len() >= n {
                return events;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {n} events on {path}, got {}",
                    self.events(path).len()
                );
            }
        }
    }
}

/// Builds a gateway from TOML pieces; everything listens on 127.0.0.1:0.
pub struct TestGateway {
    toml: String,
}

impl TestGateway {
    pub fn builder() -> Self {
        Self {
            toml: "[gateway]\nlisten = \"127.0.0.1:0\"\nstage = \"dev\"\n".to_owned(),
        }
    }

    /// Adds raw TOML (sections after [gateway]).
    pub fn toml(mut self, text: &str) -> Self {
        self.toml.push('\n');
        self.toml.push_str(text);
        self.toml.push('\n');
        self
    }

    pub fn http(self, key: &str, url: &str, route_response: bool) -> Self {
        self.toml(&format!("[routes.\"{key}\"]\ntype = \"http\"\nurl = \"{url}\"\nroute_response = {route_response}"))
    }

    pub fn mock(self, key: &str, status: u16, body: &str, route_response: bool) -> Self {
        self.toml(&format!(
            "[routes.\"{key}\"]\ntype = \"mock\"\nstatus = {status}\nbody = '{body}'\nroute_response = {route_response}"
        ))
    }

    pub fn config(&self) -> Config {
        let config = Config::from_toml(&self.toml)
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{}", self.toml));
        config
            .validate()
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{}", self.toml));
        config
    }

    pub async fn start(self) -> Running {
        let gateway = Gateway::start(self.config()).await.expect("gateway starts");
        Running { gateway }
    }
}

pub struct Running {
    pub gateway: RunningGateway,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.gateway.local_addr()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/dev", self.addr())
    }

    pub fn connection_url(&self, id: &str) -> String {
        format!(
            "http://{}/dev/@connections/{}",
            self.addr(),
            id.replace('=', "%3D")
        )
    }

    pub async fn connect(&self) -> Client {
        connect_async(self.ws_url())
            .await
            .expect("websocket connects")
            .0
    }
}

/// The next data or close message, skipping pings and pongs.
pub async fn next<S>(client: &mut WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("no error");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

pub async fn next_text(client: &mut Client) -> String {
    match next(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Waits for the server's Close frame and returns its code and reason.
pub async fn close_of(client: &mut Client) -> (u16, String) {
    loop {
        match next(client).await {
            Message::Close(Some(CloseFrame { code, reason })) => {
                return (code.into(), reason.to_string());
            }
            Message::Close(None) => return (1005, String::new()),
            _ => continue,
        }
    }
}

pub async fn send(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("send");
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Asserts that a `$disconnect` event reports this close code and reason.
pub fn assert_disconnect_reports(event: &Value, code: u16, reason: &str) {
    let context = &event["requestContext"];
    assert_eq!(
        (
            &context["disconnectStatusCode"],
            &context["disconnectReason"]
        ),
        (&Value::from(code), &Value::from(reason)),
        "{event}"
    );
}

/// POSTs `body` to connection `id`; the status.
pub async fn post_to(gateway: &Running, id: &str, body: &str) -> u16 {
    let response = http()
        .post(gateway.connection_url(id))
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    response.status().as_u16()
}

/// Connects through a `$connect` http route that the stub records; returns the client and its id.
pub async fn connect_with_id(gateway: &Running, stub: &Stub) -> (Client, String) {
    let before = stub.events("/connect").len();
    let client = gateway.connect().await;
    let events = stub.wait_events("/connect", before + 1).await;
    let id = events[before]["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_owned();
    (client, id)
}

/// Signs like an AWS SDK (host and x-amz-date, service execute-api) with this key.
#[allow(clippy::too_many_arguments)]
pub fn signed_as(
    method: &str,
    url: &str,
    body: &[u8],
    access_key_id: &str,
    secret: &str,
    region: &str,
    at: SystemTime,
) -> reqwest::RequestBuilder {
    let parsed = reqwest::Url::parse(url).expect("url");
    let host = format!(
        "{}:{}",
        parsed.host_str().expect("host"),
        parsed.port().expect("port")
    );
    let identity: Identity = Credentials::new(access_key_id, secret, None, None, "test").into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("execute-api")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .expect("params")
        .into();
    let headers = [("host", host.as_str())];
    let request = SignableRequest::new(method, url, headers.into_iter(), SignableBody::Bytes(body))
        .expect("signable");
    let (instructions, _) = sign(request, &params).expect("signs").into_parts();
    let mut builder = http()
        .request(method.parse().expect("method"), url)
        .body(body.to_vec());
    for (name, value) in instructions.headers() {
        builder = builder.header(name, value);
    }
    builder
}

// --- raw sockets ---------------------------------------------------------------------------

/// A WebSocket upgrade request for `path`, as raw HTTP/1.1.
pub fn upgrade_head(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// Reads a response head (status line and headers) byte by byte, leaving the rest unread.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(WAIT, async {
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.expect("read");
            assert_eq!(
                n,
                1,
                "closed before the end of the head: {:?}",
                String::from_utf8_lossy(&head)
            );
            head.push(byte[0]);
        }
    })
    .await
    .expect("a response head in time");
    String::from_utf8(head).expect("utf-8 head")
}

/// An upgrade over a raw socket: the socket (left open), the status and the head.
pub async fn raw_upgrade(addr: SocketAddr, path: &str) -> (TcpStream, u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(upgrade_head(path).as_bytes())
        .await
        .expect("write");
    let head = read_head(&mut stream).await;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (stream, status, head)
}

/// One frame read off a raw socket: FIN, opcode, payload (a server's frames are not masked).
pub async fn read_frame(stream: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    tokio::time::timeout(WAIT, async {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.expect("frame head");
        assert_eq!(head[1] & 0x80, 0, "a server frame is not masked");
        let len = match head[1] & 0x7f {
            126 => u64::from(stream.read_u16().await.expect("16-bit length")),
            127 => stream.read_u64().await.expect("64-bit length"),
            short => u64::from(short),
        };
        let mut payload = vec![0u8; usize::try_from(len).expect("length")];
        stream.read_exact(&mut payload).await.expect("payload");
        (head[0] & 0x80 != 0, head[0] & 0x0f, payload)
    })
    .await
    .expect("a frame in time")
}
