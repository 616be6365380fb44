//! Whole management requests, bodies included, through the real handler
//! (`wsgate::mgmt::handle`): the batch send's JSON (`connectionIds`, `data` / `dataBase64`),
//! `limit` / `next` / `group` / `user` / `except` query parameters, `Content-Length`, names and
//! ids, against a hub of four fixed connections.
//!
//! Input: a small HTTP/1-like text (`common/request_text.rs`, shared with `sigv4_header`), so
//! seeds are readable: `METHOD PATH?QUERY`, header lines, an empty line, the body.
//!
//! Requests the `http` builder refuses, and paths `Target::parse` does not take as management
//! paths, are skipped. Two headers read by this harness, not by the gateway, pick the runtime:
//! `x-fuzz-overflow: close` the one with `fanout_overflow = "close"` and the default 131072-byte
//! payload limit; `x-fuzz-auth: token` the one with `auth = "token"` (a `sender` token,
//! `Bearer fuzz-token-sender-000001`, limited to `post_to_connection` and `post_to_connections`,
//! and an `admin` one, `Bearer fuzz-token-admin-0000001`, allowed everything); otherwise the
//! runtime has `auth = "none"`, `skip` and a 64-byte limit, so 413s are reachable.
//!
//! The hub (rebuilt for every input), stage `dev`, management auth `none`:
//!
//! | id | user | groups | outbox |
//! |---|---|---|---|
//! | `ABAQEBAQEBAQEBA=` | alice | room | 1 MiB |
//! | `ACAgICAgICAgICA=` | bob | room, lobby | 1 MiB |
//! | `ADAwMDAwMDAwMDA=` | alice | room | 8 bytes (full for larger data) |
//! | `AEBAQEBAQEBAQEA=` | — | lobby | its session is gone (pushes fail with `Closed`) |
//!
//! Checks besides "no panic": the handler finishes without waiting (its body is in memory);
//! every answer is JSON with `x-amzn-RequestId`, errors with `x-amzn-ErrorType` and a `message`;
//! a refused call delivers nothing; `POST @connections/{id}` delivers exactly the body to that
//! connection; a batch answers for every listed id (`sent` + `gone` + `skipped`) and delivers the
//! decoded data once per `sent` entry; `@broadcast` / group / user sends deliver the body to
//! exactly `recipients` connections; lists are sorted by id, hold live fixture ids only and no
//! more than `limit` items; under `auth = "token"`, nothing succeeds without a known token, and
//! the `sender` token succeeds only at its two operations.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wsgate::directory::Directory;
use wsgate::hub::{Command, Hub, Inbox, SessionHandle, outbox};
use wsgate::limits::RateLimiter;
use wsgate::mgmt::{self, Target};
use wsgate::state::{Deployment, ManagementServices};
use wsgate_core::config::{Config, FanoutOverflow, ManagementAuth, Operation, Token};
use wsgate_core::event::ConnectionContext;
use wsgate_core::id::ConnectionId;

#[path = "common/request_text.rs"]
mod request_text;
use request_text::RequestText;

const STAGE: &str = "dev";
const SMALL_LIMIT: usize = 64;
const SENDER_TOKEN: &str = "fuzz-token-sender-000001";
const ADMIN_TOKEN: &str = "fuzz-token-admin-0000001";
const REGION: &str = "us-east-1";

/// The fixture: id, user, groups, outbox bytes, whether the session is still reading.
const SESSIONS: [(&str, Option<&str>, &[&str], usize, bool); 4] = [
    ("ABAQEBAQEBAQEBA=", Some("alice"), &["room"], 1 << 20, true),
    (
        "ACAgICAgICAgICA=",
        Some("bob"),
        &["room", "lobby"],
        1 << 20,
        true,
    ),
    ("ADAwMDAwMDAwMDA=", Some("alice"), &["room"], 8, true),
    ("AEBAQEBAQEBAQEA=", None, &["lobby"], 1 << 20, false),
];

struct State {
    services: ManagementServices,
    /// Kept for the deployments' lifetime (the default config has no function).
    _functions: wsgate::function::FunctionHost,
    /// `skip`, 64-byte payloads.
    small: Deployment,
    /// `close`, the default 131072-byte payloads.
    close: Deployment,
    /// `auth = "token"`, `skip`, 64-byte payloads.
    token: Deployment,
    /// `MGMT_REQUEST_TRACE=1`: print each request's status and answer (to check seeds).
    trace: bool,
    /// The handler arms timers (the body deadline): it runs inside this runtime's context.
    clock: tokio::runtime::Runtime,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Small,
    Close,
    Token,
}

fn runtime(
    client: &reqwest::Client,
    functions: &wsgate::function::FunctionHost,
    kind: Kind,
) -> Deployment {
    let mut config = Config::from_toml(wsgate::DEFAULT_CONFIG).expect("the default config parses");
    config.management.auth = ManagementAuth::None;
    config.limits.management_requests_per_second = 0;
    // Failures would be limited across inputs (the services live as long as the process).
    config.management.auth_failures_per_second = 0;
    if kind == Kind::Close {
        config.limits.fanout_overflow = FanoutOverflow::Close;
    } else {
        config.limits.fanout_overflow = FanoutOverflow::Skip;
        config.management.max_payload_bytes = SMALL_LIMIT;
    }
    if kind == Kind::Token {
        config.management.auth = ManagementAuth::Token;
        config.management.tokens = vec![
            Token {
                name: "sender".into(),
                token: Some(SENDER_TOKEN.into()),
                token_env: None,
                operations: Some(vec![
                    Operation::PostToConnection,
                    Operation::PostToConnections,
                ]),
            },
            Token {
                name: "admin".into(),
                token: Some(ADMIN_TOKEN.into()),
                token_env: None,
                operations: None,
            },
        ];
    }
    Deployment::build(config, client, functions, REGION, &Arc::default())
        .expect("the fuzz config builds")
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        let client = reqwest::Client::new();
        let functions = wsgate::function::FunctionHost::new(wsgate::function::HostSettings {
            management_endpoint: format!("http://127.0.0.1:1/{STAGE}"),
            region: "us-east-1".into(),
            extra_env: Vec::new(),
            watch: false,
            metrics: Arc::default(),
        })
        .expect("function host");
        // The host writes its bootstraps to a temporary folder that only function routes use
        // (the default config has none), and the process exits without dropping it: remove it now.
        remove_bootstraps();
        let small = runtime(&client, &functions, Kind::Small);
        let close = runtime(&client, &functions, Kind::Close);
        let token = runtime(&client, &functions, Kind::Token);
        let services = ManagementServices {
            directory: Arc::new(Directory::new(Arc::new(Hub::default()), None)),
            rate: RateLimiter::default(),
            failures: RateLimiter::default(),
            body_reads: wsgate::limits::ConnectionCount::new(),
            replays: wsgate::auth::replay::ReplayCache::default(),
            signing_keys: wsgate::auth::sigv4::SigningKeys::default(),
            metrics: Arc::default(),
        };
        let trace = std::env::var_os("MGMT_REQUEST_TRACE").is_some();
        Mutex::new(State {
            services,
            _functions: functions,
            small,
            close,
            token,
            trace,
            clock: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a runtime"),
        })
    })
}

fn remove_bootstraps() {
    let prefix = format!("wsgate-bootstrap-{}-", std::process::id());
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// A fresh hub with the fixture's sessions; the inboxes of the live ones, by fixture index.
fn fill(hub: &Hub) -> Vec<Option<Inbox>> {
    let mut inboxes = Vec::new();
    for (at, (id, user, groups, limit, live)) in SESSIONS.iter().enumerate() {
        let id = ConnectionId::parse(id).expect("fixture id");
        let ctx = ConnectionContext {
            connection_id: id,
            connected_at: 1_700_000_000_000 + at as u64,
            source_ip: "127.0.0.1".into(),
            user_agent: Some("fuzz".into()),
            domain_name: "localhost".into(),
            stage: STAGE.into(),
            api_id: "local".into(),
            authorizer: None,
        };
        let (out, inbox) = outbox(*limit);
        hub.insert(Arc::new(SessionHandle::new(Arc::new(ctx), out)));
        for group in *groups {
            hub.join(&id, group).expect("join");
        }
        if let Some(user) = user {
            hub.set_user(&id, Some(user)).expect("user");
        }
        inboxes.push(live.then_some(inbox));
    }
    inboxes
}

/// Polls once: nothing in the handler should wait when the body is already in memory.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the management handler waited on an in-memory request"),
    }
}

/// What one connection received: data frames and whether a close was queued.
#[derive(Default, Debug)]
struct Received {
    frames: Vec<(bool, Vec<u8>)>,
    closed: bool,
}

fn drain(inbox: &mut Inbox) -> Received {
    let mut received = Received::default();
    while let Some(command) = inbox.try_recv() {
        match command {
            Command::Text(text) => received.frames.push((true, text.as_bytes().to_vec())),
            Command::Binary(bytes) => received.frames.push((false, bytes.to_vec())),
            Command::Close(..) => received.closed = true,
        }
    }
    received
}

fn fixture_index(id: &str) -> Option<usize> {
    SESSIONS.iter().position(|(fixture, ..)| *fixture == id)
}

/// Every frame delivered carries `data`, as text exactly when it is UTF-8.
fn assert_frames_are(received: &[Received], data: &[u8]) {
    let text = std::str::from_utf8(data).is_ok();
    for (at, r) in received.iter().enumerate() {
        for (is_text, bytes) in &r.frames {
            assert_eq!(bytes.as_slice(), data, "connection {at} got other data");
            assert_eq!(*is_text, text, "connection {at}: text frame iff UTF-8");
        }
    }
}

fn strings(value: &Value, key: &str) -> Vec<String> {
    match value.get(key) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().expect("an id list holds strings").to_owned())
            .collect(),
        Some(other) => panic!("{key} is not a list: {other}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = RequestText::parse(data);
    let body = text.body;
    let Ok(request) = text.builder().body(Body::from(body.to_vec())) else {
        return;
    };
    let Some(target) = Target::parse(request.uri().path(), STAGE) else {
        return;
    };
    let header = |name: &str| request.headers().get(name).map(|v| v.as_bytes().to_vec());
    let close = header("x-fuzz-overflow").is_some_and(|v| v == b"close");
    let token_auth = header("x-fuzz-auth").is_some_and(|v| v == b"token");
    // The token the gateway will find, if any (as it reads the first Authorization header).
    let presented = header("authorization").and_then(|v| {
        let v = String::from_utf8(v).ok()?;
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    let method = request.method().clone();
    let query = request.uri().query().unwrap_or_default().to_owned();

    let mut guard = state().lock().unwrap_or_else(|e| e.into_inner());
    let state = &mut *guard;
    let _clock = state.clock.enter();
    state.services.directory = Arc::new(Directory::new(Arc::new(Hub::default()), None));
    let mut inboxes = fill(state.services.directory.hub());
    let runtime = if token_auth {
        &state.token
    } else if close {
        &state.close
    } else {
        &state.small
    };
    let max_payload = runtime.config.management.max_payload_bytes;

    let peer = std::net::IpAddr::from([127, 0, 0, 1]);
    let response = now(mgmt::handle(
        &state.services,
        runtime,
        target.clone(),
        peer,
        request,
    ));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let answer = now(axum::body::to_bytes(response.into_body(), usize::MAX)).expect("body");

    let received: Vec<Received> = inboxes
        .iter_mut()
        .map(|inbox| inbox.as_mut().map(drain).unwrap_or_default())
        .collect();
    let delivered: usize = received.iter().map(|r| r.frames.len()).sum();
    if state.trace {
        eprintln!(
            "{method} {target:?}: {status} {} ({delivered} frames delivered)",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }

    assert_eq!(
        headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    assert_eq!(
        headers.get("x-amzn-RequestId").map(|v| v.len()),
        Some(16),
        "every answer has a request id"
    );
    let json: Option<Value> = (!answer.is_empty()).then(|| {
        serde_json::from_slice(&answer)
            .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {answer:?}"))
    });

    if status >= 400 {
        assert!(
            headers.contains_key("x-amzn-ErrorType"),
            "error {status} without a type"
        );
        let message = json.as_ref().and_then(|j| j.get("message"));
        assert!(
            message.is_some_and(Value::is_string),
            "error {status} without a message"
        );
        assert_eq!(delivered, 0, "a refused call ({status}) delivered data");
        assert!(
            received.iter().all(|r| !r.closed),
            "a refused call ({status}) closed a connection"
        );
        return;
    }
    assert!(!headers.contains_key("x-amzn-ErrorType"));
    assert!(matches!(status, 200 | 204), "unexpected status {status}");
    if token_auth {
        match presented.as_deref() {
            Some(ADMIN_TOKEN) => {}
            Some(SENDER_TOKEN) => assert!(
                matches!(
                    (&target, method.as_str()),
                    (Target::Connection(_) | Target::Connections, "POST")
                ),
                "the sender token may only send, got {status} for {method} {target:?}"
            ),
            other => panic!("{status} for {method} {target:?} with the token {other:?}"),
        }
    }

    match (&target, method.as_str()) {
        (Target::Connection(id), "POST") => {
            assert!(body.len() <= max_payload);
            let at = fixture_index(id).expect("only a live fixture id is sent to");
            assert_eq!(received[at].frames.len(), 1);
            assert_eq!(delivered, 1);
            assert_frames_are(&received, body);
        }
        (Target::Connection(id), "DELETE") => {
            let at = fixture_index(id).expect("only a fixture id is deleted");
            assert!(received[at].closed || inboxes[at].is_none());
            assert_eq!(delivered, 0);
        }
        (Target::Connections, "POST") => {
            let request: Value = serde_json::from_slice(body).expect("an accepted batch is JSON");
            let listed = request["connectionIds"]
                .as_array()
                .expect("connectionIds")
                .len();
            let data = match (request.get("data"), request.get("dataBase64")) {
                (Some(Value::String(text)), None) => text.as_bytes().to_vec(),
                (None, Some(Value::String(encoded))) => {
                    STANDARD.decode(encoded).expect("accepted base64 decodes")
                }
                other => panic!("an accepted batch with {other:?}"),
            };
            assert!(data.len() <= max_payload);
            let answer = json.expect("a batch answers");
            let (sent, gone, skipped) = (
                strings(&answer, "sent"),
                strings(&answer, "gone"),
                strings(&answer, "skipped"),
            );
            assert_eq!(sent.len() + gone.len() + skipped.len(), listed, "{answer}");
            assert_eq!(delivered, sent.len());
            for id in &sent {
                let at = fixture_index(id).expect("sent to a fixture id");
                let times = sent.iter().filter(|s| *s == id).count();
                assert_eq!(received[at].frames.len(), times, "{id} in {answer}");
            }
            for id in &gone {
                if let Some(at) = fixture_index(id) {
                    assert!(inboxes[at].is_none(), "{id} is live but answered gone");
                }
            }
            assert_frames_are(&received, &data);
        }
        (Target::Broadcast | Target::Group(_) | Target::User(_), "POST") => {
            let answer = json.expect("a send answers");
            let recipients = answer["recipients"].as_u64().expect("recipients") as usize;
            assert_eq!(delivered, recipients, "{answer}");
            assert!(
                received.iter().all(|r| r.frames.len() <= 1),
                "one frame each"
            );
            assert_frames_are(&received, body);
            if !close {
                assert!(received.iter().all(|r| !r.closed), "`skip` closes nobody");
            }
        }
        (Target::Connections | Target::Group(_), "GET") => {
            let answer = json.expect("a list answers");
            let items = answer["items"].as_array().expect("items");
            let ids: Vec<&str> = items
                .iter()
                .map(|item| item["connectionId"].as_str().expect("connectionId"))
                .collect();
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "unsorted list {answer}"
            );
            assert!(ids.iter().all(|id| fixture_index(id).is_some()));
            let limit = query::limit(&query);
            assert!(
                ids.len() <= limit,
                "{} items over the limit {limit}",
                ids.len()
            );
            assert_eq!(delivered, 0);
        }
        _ => assert_eq!(delivered, 0),
    }
});

mod query {
    /// The `limit` a list call used (only called on accepted lists: a given limit parsed).
    pub fn limit(query: &str) -> usize {
        wsgate_core::query::pairs(query)
            .into_iter()
            .find(|(k, _)| k == "limit")
            .map_or(100, |(_, v)| v.parse().expect("an accepted limit parses"))
    }
}
