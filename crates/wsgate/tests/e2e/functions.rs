//! Function integrations: real Python and Node handlers in local processes through the built-in
//! bootstraps and the Lambda Runtime API.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::*;

/// A fresh folder for one test's handler code.
fn project(files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wsgate-fn-{}",
        wsgate_core::id::random_id().replace(['=', '-', '_'], "x")
    ));
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

fn function(name: &str, runtime: &str, handler: &str, dir: &Path, extra: &str) -> String {
    format!(
        "[functions.{name}]\nruntime = \"{runtime}\"\nhandler = \"{handler}\"\ndir = \"{}\"\n{extra}\n",
        dir.display()
    )
}

fn route(key: &str, function: &str, route_response: bool) -> String {
    format!(
        "[routes.\"{key}\"]\ntype = \"function\"\nfunction = \"{function}\"\nroute_response = {route_response}\n"
    )
}

async fn start(toml: &str) -> Running {
    let mut config = TestGateway::builder().toml(toml).config();
    config.limits.integration_timeout = Duration::from_secs(10);
    let gateway = wsgate::Gateway::start_with(
        config,
        wsgate::Options {
            watch_code: true,
            ..Default::default()
        },
    )
    .await
    .expect("gateway starts");
    Running { gateway }
}

const PY_APP: &str = r#"
import json, os
calls = 0

def handler(event, context):
    global calls
    calls += 1
    body = json.loads(event.get("body") or "{}")
    if body.get("crash"):
        os._exit(3)
    if body.get("raise"):
        raise ValueError("boom")
    if body.get("sleep"):
        import time
        time.sleep(body["sleep"])
    return {"statusCode": 200, "body": json.dumps({
        "calls": calls,
        "route": event["requestContext"]["routeKey"],
        "connectionId": event["requestContext"]["connectionId"],
        "function": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
        "endpoint": os.environ.get("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"),
        "table": os.environ.get("TABLE_NAME"),
        "pid": os.getpid(),
    })}
"#;

async fn ask(client: &mut Client, message: Value) -> Value {
    send(client, &message.to_string()).await;
    let text = next_text(client).await;
    serde_json::from_str(&text).unwrap_or_else(|_| json!({"raw": text}))
}

#[tokio::test]
async fn python_handler_runs_warm_with_lambda_context_and_environment() {
    let dir = project(&[("app.py", PY_APP)]);
    let gw = start(
        &(function(
            "chat",
            "python",
            "app.handler",
            &dir,
            "environment = { TABLE_NAME = \"chat\" }",
        ) + &route("$default", "chat", true)),
    )
    .await;
    let mut client = gw.connect().await;
    let first = ask(&mut client, json!({"action": "x"})).await;
    assert_eq!(first["calls"], 1, "{first}");
    assert_eq!(first["route"], "$default");
    assert_eq!(first["function"], "chat");
    assert_eq!(first["table"], "chat");
    assert_eq!(first["endpoint"], format!("http://{}/dev", gw.addr()));
    let remaining = first["remaining"].as_u64().expect("ms");
    assert!(remaining > 5_000 && remaining <= 10_000, "{remaining}");
    let second = ask(&mut client, json!({"action": "x"})).await;
    assert_eq!(second["calls"], 2, "the process stays warm: {second}");
    assert_eq!(second["pid"], first["pid"]);
}

#[tokio::test]
async fn node_handler_runs_through_the_built_in_bootstrap() {
    let dir = project(&[(
        "index.mjs",
        "let n = 0;\nexport const handler = async (event, context) => ({ statusCode: 200, body: JSON.stringify({ n: ++n, id: event.requestContext.connectionId, fn: context.functionName }) });\n",
    )]);
    let gw = start(
        &(function("app", "node", "index.handler", &dir, "") + &route("$default", "app", true)),
    )
    .await;
    let mut client = gw.connect().await;
    let first = ask(&mut client, json!({"action": "x"})).await;
    assert_eq!(first["n"], 1, "{first}");
    assert_eq!(first["fn"], "app");
    assert_eq!(ask(&mut client, json!({})).await["n"], 2);
}

#[tokio::test]
async fn connect_function_decides_the_upgrade() {
    let dir = project(&[(
        "auth.py",
        "def handler(event, context):\n    q = event.get('queryStringParameters') or {}\n    return {'statusCode': 200 if q.get('token') == 'ok' else 403}\n",
    )]);
    let gw = start(
        &(function("auth", "python", "auth.handler", &dir, "") + &route("$connect", "auth", false)),
    )
    .await;
    let refused = tokio_tungstenite::connect_async(format!("{}?token=bad", gw.ws_url())).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    tokio_tungstenite::connect_async(format!("{}?token=ok", gw.ws_url()))
        .await
        .expect("accepted");
}

fn error_frame(text: &str, message: &str) -> bool {
    text.starts_with(&format!(r#"{{"message": "{message}""#))
}

#[tokio::test]
async fn raising_handler_sends_internal_server_error_and_stays_warm() {
    let dir = project(&[("app.py", PY_APP)]);
    let gw = start(
        &(function("chat", "python", "app.handler", &dir, "") + &route("$default", "chat", true)),
    )
    .await;
    let mut client = gw.connect().await;
    let pid = ask(&mut client, json!({})).await["pid"].clone();
    send(&mut client, &json!({"raise": true}).to_string()).await;
    assert!(error_frame(
        &next_text(&mut client).await,
        "Internal server error"
    ));
    let after = ask(&mut client, json!({})).await;
    assert_eq!(
        after["pid"], pid,
        "a handler error does not cost the process"
    );
    assert_eq!(after["calls"], 3);
}

#[tokio::test]
async fn crashed_process_is_replaced() {
    let dir = project(&[("app.py", PY_APP)]);
    let gw = start(
        &(function("chat", "python", "app.handler", &dir, "") + &route("$default", "chat", true)),
    )
    .await;
    let mut client = gw.connect().await;
    let pid = ask(&mut client, json!({})).await["pid"].clone();
    send(&mut client, &json!({"crash": true}).to_string()).await;
    assert!(error_frame(
        &next_text(&mut client).await,
        "Internal server error"
    ));
    let after = ask(&mut client, json!({})).await;
    assert_ne!(after["pid"], pid, "a new process answers");
    assert_eq!(after["calls"], 1);
}

#[tokio::test]
async fn timed_out_invocation_sends_endpoint_request_timed_out_and_kills_the_process() {
    let dir = project(&[("app.py", PY_APP)]);
    let gw = start(
        &(function("chat", "python", "app.handler", &dir, "timeout = \"500ms\"")
            + &route("$default", "chat", true)),
    )
    .await;
    let mut client = gw.connect().await;
    let pid = ask(&mut client, json!({})).await["pid"].clone();
    send(&mut client, &json!({"sleep": 5}).to_string()).await;
    assert!(error_frame(
        &next_text(&mut client).await,
        "Endpoint request timed out"
    ));
    let after = ask(&mut client, json!({})).await;
    assert_ne!(after["pid"], pid);
}

#[tokio::test]
async fn import_error_sends_internal_server_error() {
    let dir = project(&[("app.py", "def handler(event, context:\n    pass\n")]);
    let gw = start(
        &(function("chat", "python", "app.handler", &dir, "") + &route("$default", "chat", true)),
    )
    .await;
    let mut client = gw.connect().await;
    send(&mut client, "{}").await;
    assert!(error_frame(
        &next_text(&mut client).await,
        "Internal server error"
    ));
}

#[tokio::test]
async fn edited_handler_runs_on_the_next_message() {
    let dir = project(&[(
        "app.py",
        "def handler(event, context):\n    return {'statusCode': 200, 'body': 'v1'}\n",
    )]);
    let gw = start(
        &(function("chat", "python", "app.handler", &dir, "") + &route("$default", "chat", true)),
    )
    .await;
    let mut client = gw.connect().await;
    send(&mut client, "{}").await;
    assert_eq!(next_text(&mut client).await, "v1");
    // Make sure the new file's modification time differs from the old one's.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(
        dir.join("app.py"),
        "def handler(event, context):\n    return {'statusCode': 200, 'body': 'v2'}\n",
    )
    .expect("edit");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    send(&mut client, "{}").await;
    assert_eq!(next_text(&mut client).await, "v2");
}

#[tokio::test]
async fn concurrent_messages_use_up_to_max_concurrency_processes() {
    let dir = project(&[("app.py", PY_APP)]);
    let gw = start(
        &(function("chat", "python", "app.handler", &dir, "max_concurrency = 3")
            + &route("$default", "chat", true)),
    )
    .await;
    let mut client = gw.connect().await;
    for _ in 0..6 {
        send(&mut client, &json!({"sleep": 0.3}).to_string()).await;
    }
    let mut pids = std::collections::HashSet::new();
    for _ in 0..6 {
        let answer: Value = serde_json::from_str(&next_text(&mut client).await).expect("json");
        pids.insert(answer["pid"].as_u64().expect("pid"));
    }
    assert!(pids.len() > 1 && pids.len() <= 3, "{pids:?}");
}

#[tokio::test]
async fn reload_keeps_connections_and_switches_functions() {
    let dir = project(&[
        (
            "a.py",
            "def handler(event, context):\n    return {'statusCode': 200, 'body': 'a'}\n",
        ),
        (
            "b.py",
            "def handler(event, context):\n    return {'statusCode': 200, 'body': 'b'}\n",
        ),
    ]);
    let gw =
        start(&(function("f", "python", "a.handler", &dir, "") + &route("$default", "f", true)))
            .await;
    let mut client = gw.connect().await;
    send(&mut client, "{}").await;
    assert_eq!(next_text(&mut client).await, "a");
    let config = TestGateway::builder()
        .toml(&(function("f", "python", "b.handler", &dir, "") + &route("$default", "f", true)))
        .config();
    gw.gateway.reload(config).expect("reloads");
    send(&mut client, "{}").await;
    assert_eq!(next_text(&mut client).await, "b");
}

// ---------------------------------------------------------------------------------------------
// The Runtime API belongs to the worker: this test process, which is no descendant of it, is the
// outside process that tries to steal invocations and forge results.
// ---------------------------------------------------------------------------------------------

/// A handler that tells its Runtime API address and, when asked, writes its request id to a file
/// before sleeping (so an outsider knows the real id of an invocation in flight), or calls its own
/// Runtime API with another `Host`.
const PY_SPIED: &str = r#"
import http.client, json, os, time
calls = 0

def handler(event, context):
    global calls
    calls += 1
    body = json.loads(event.get("body") or "{}")
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    status = None
    if body.get("idfile"):
        with open(body["idfile"], "w") as f:
            f.write(context.aws_request_id)
        time.sleep(body.get("sleep", 0))
    if body.get("host"):
        c = http.client.HTTPConnection(api, timeout=5)
        c.putrequest("POST", "/2018-06-01/runtime/init/error", skip_host=True)
        c.putheader("Host", body["host"])
        c.putheader("Content-Length", "2")
        c.endheaders(b"{}")
        status = c.getresponse().status
    return {"statusCode": 200, "body": json.dumps({
        "calls": calls, "pid": os.getpid(), "api": api, "echo": body.get("echo"), "status": status,
    })}
"#;

/// Sends `request` to the Runtime API at `api` from this process. Returns every byte that came
/// back and whether the connection was closed (an error reading counts as closed) within `WAIT`.
async fn outsider(api: &str, request: String) -> (Vec<u8>, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(api).await else {
        return (Vec::new(), true);
    };
    let _ = stream.write_all(request.as_bytes()).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    (got, read.is_ok())
}

/// Refused: closed at once, not a byte answered.
fn refused(outcome: (Vec<u8>, bool)) -> bool {
    let (got, closed) = outcome;
    if !got.is_empty() {
        eprintln!("an outsider got: {}", String::from_utf8_lossy(&got));
    }
    closed && got.is_empty()
}

fn next_request(api: &str) -> String {
    format!(
        "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\nconnection: close\r\n\r\n"
    )
}

fn post_request(api: &str, path: &str, body: &str) -> String {
    format!(
        "POST /2018-06-01/runtime/{path} HTTP/1.1\r\nHost: {api}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn an_outside_process_gets_no_invocation_and_forges_no_result() {
    let dir = project(&[("app.py", PY_SPIED)]);
    let gw = start(
        &(function(
            "spied",
            "python",
            "app.handler",
            &dir,
            "max_concurrency = 1",
        ) + &route("$default", "spied", true)),
    )
    .await;
    let mut client = gw.connect().await;
    let first = ask(&mut client, json!({"echo": "one"})).await;
    let api = first["api"].as_str().expect("api").to_owned();
    let pid = first["pid"].clone();
    assert!(api.starts_with("127.0.0.1:"), "{api}");

    // Outsiders long-poll /next while the client sends: they get nothing, the worker gets it all.
    let pollers: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn({
                let api = api.clone();
                async move { outsider(&api, next_request(&api)).await }
            })
        })
        .collect();
    for n in 2..5 {
        let answer = ask(&mut client, json!({"echo": n})).await;
        assert_eq!(answer["calls"], n, "{answer}");
        assert_eq!(answer["echo"], n);
    }
    for poller in pollers {
        assert!(
            refused(poller.await.expect("task")),
            "an outsider's /next was not refused"
        );
    }

    // An invocation in flight, its real request id known, a second one queued behind it: the
    // outsider's forged /response, /error and /init/error change nothing.
    // Outside the code's folder: a new file there would restart the process (watch_code).
    let idfile = project(&[("request-id", "")]).join("request-id");
    send(
        &mut client,
        &json!({"echo": "slow", "idfile": idfile, "sleep": 1}).to_string(),
    )
    .await;
    send(&mut client, &json!({"echo": "queued"}).to_string()).await;
    let request_id = wait_for_file(&idfile).await;
    let forged = r#"{"statusCode": 200, "body": "forged"}"#;
    for request in [
        post_request(&api, &format!("invocation/{request_id}/response"), forged),
        post_request(
            &api,
            &format!("invocation/{request_id}/error"),
            r#"{"errorMessage":"x","errorType":"Forged"}"#,
        ),
        post_request(
            &api,
            "init/error",
            r#"{"errorMessage":"x","errorType":"Forged"}"#,
        ),
    ] {
        assert!(
            refused(outsider(&api, request).await),
            "an outsider got an answer"
        );
    }
    let slow: Value = serde_json::from_str(&next_text(&mut client).await).expect("json");
    assert_eq!(slow["echo"], "slow", "the real result arrives: {slow}");
    let queued: Value = serde_json::from_str(&next_text(&mut client).await).expect("json");
    assert_eq!(
        queued["echo"], "queued",
        "the queued invocation survives: {queued}"
    );

    // The worker itself is answered, but only with its own address as Host.
    for host in [format!("evil.example:{}", &api[10..]), "127.0.0.2:1".into()] {
        let answer = ask(&mut client, json!({"host": host})).await;
        assert_eq!(answer["status"], 403, "Host {host}: {answer}");
    }
    let last = ask(&mut client, json!({"echo": "last"})).await;
    assert_eq!(
        last["pid"], pid,
        "the same process served everything: {last}"
    );
    assert_eq!(last["echo"], "last");
}

async fn wait_for_file(path: &Path) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The attack the review found: a REQUEST authorizer function that always raises `Unauthorized`,
/// outsiders racing it for `/next` and answering every invocation they get with an Allow policy.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn outsiders_racing_a_raising_authorizer_cannot_let_a_client_in() {
    let dir = project(&[(
        "auth.py",
        "import os\nopen(os.environ['API_FILE'], 'w').write(os.environ['AWS_LAMBDA_RUNTIME_API'])\n\ndef handler(event, context):\n    raise Exception('Unauthorized')\n",
    )]);
    // Outside the code's folder: a new file there would restart the process (watch_code).
    let api_file = project(&[("api", "")]).join("api");
    let gw = start(&format!(
        "{}[authorizers.lambda]\ntype = \"request\"\nfunction = \"auth\"\nidentity_sources = [\"route.request.header.Authorization\"]\n[routes.\"$connect\"]\nauthorizer = \"lambda\"\n[routes.\"$default\"]\ntype = \"mock\"\nbody = \"in\"\nroute_response = true\n",
        function(
            "auth",
            "python",
            "auth.handler",
            &dir,
            &format!("environment = {{ API_FILE = \"{}\" }}", api_file.display())
        )
    ))
    .await;
    let attempt = || async {
        let mut request = gw.ws_url().into_client_request().expect("request");
        request
            .headers_mut()
            .insert("authorization", HeaderValue::from_static("anyone"));
        match tokio_tungstenite::connect_async(request).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            Err(other) => panic!("{other}"),
        }
    };
    assert_eq!(attempt().await, 401, "the authorizer refuses");
    let api = wait_for_file(&api_file).await;

    let stop = tokio_util::sync::CancellationToken::new();
    let stolen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let racers: Vec<_> = (0..3)
        .map(|_| {
            let (api, stop, stolen) = (api.clone(), stop.clone(), stolen.clone());
            tokio::spawn(async move { race(&api, &stop, &stolen).await })
        })
        .collect();
    for _ in 0..10 {
        assert_eq!(attempt().await, 401, "a forged Allow let a client in");
    }
    stop.cancel();
    let mut tries = 0;
    for racer in racers {
        tries += racer.await.expect("task");
    }
    assert!(tries >= 3, "the outsiders did race ({tries} tries)");
    assert_eq!(
        stolen.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "an outsider got an invocation"
    );
}

/// Long-polls `/next` again and again; answers any invocation it gets with an Allow for everything.
/// Returns how many times it tried.
async fn race(
    api: &str,
    stop: &tokio_util::sync::CancellationToken,
    stolen: &std::sync::atomic::AtomicUsize,
) -> usize {
    let allow = json!({
        "principalId": "attacker",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"}
        ]},
    })
    .to_string();
    let mut tries = 0;
    while !stop.is_cancelled() && tries < 10_000 {
        tries += 1;
        let (got, _) = outsider(api, next_request(api)).await;
        let head = String::from_utf8_lossy(&got).to_lowercase();
        let id = head
            .lines()
            .find_map(|line| line.strip_prefix("lambda-runtime-aws-request-id:"))
            .map(|id| id.trim().to_owned());
        if let Some(id) = id {
            stolen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            outsider(
                api,
                post_request(api, &format!("invocation/{id}/response"), &allow),
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tries
}
