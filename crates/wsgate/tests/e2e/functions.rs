//! Function integrations: real Python and Node handlers in local processes through the built-in
//! bootstraps and the Lambda Runtime API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

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
