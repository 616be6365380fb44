//! Safe defaults that do not cap production: loopback clients (a same-host proxy's) are not
//! limited per address, an unauthenticated management API answers loopback callers only, a TLS
//! listener refuses plain HTTP, connections before their upgrade are bounded, and `wsgate check`
//! fails where `serve` would.

use std::process::Command;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::*;
use crate::security::{TempDir, tls_toml, write_cert};

#[tokio::test]
async fn two_hundred_clients_opening_at_once_from_loopback_are_all_accepted() {
    // The embedded defaults' per-address limits (1 000 open, 100 new a second, burst 100) would
    // refuse most of these: every client of a same-host proxy has the proxy's address.
    let gw = TestGateway::builder().start().await;
    let addr = gw.addr();
    let upgrades: Vec<_> = (0..200)
        .map(|_| tokio::spawn(async move { raw_upgrade(addr, "/dev").await }))
        .collect();
    let mut open = Vec::new();
    for upgrade in upgrades {
        let (stream, status, head) = upgrade.await.expect("joined");
        assert_eq!(status, 101, "{head}");
        open.push(stream);
    }
    assert_eq!(gw.gateway.open_connections(), 200);
}

#[tokio::test]
async fn loopback_clients_are_limited_per_address_when_exempt_loopback_is_off() {
    let gw = TestGateway::builder()
        .toml("[limits]\nmax_connections_per_ip = 2\nexempt_loopback = false")
        .start()
        .await;
    let (_a, first, _) = raw_upgrade(gw.addr(), "/dev").await;
    let (_b, second, _) = raw_upgrade(gw.addr(), "/dev").await;
    let (_c, third, _) = raw_upgrade(gw.addr(), "/dev").await;
    assert_eq!((first, second, third), (101, 101, 429));
}

#[tokio::test]
async fn development_applies_no_per_address_limit() {
    let config = TestGateway::builder()
        .toml("[limits]\nmax_connections_per_ip = 1\nexempt_loopback = false")
        .config();
    let options = wsgate::Options {
        development: true,
        ..wsgate::Options::default()
    };
    let gateway = wsgate::Gateway::start_with(config, options)
        .await
        .expect("starts");
    let mut open = Vec::new();
    for _ in 0..3 {
        let (stream, status, head) = raw_upgrade(gateway.local_addr(), "/dev").await;
        assert_eq!(status, 101, "{head}");
        open.push(stream);
    }
}

/// A management call that a trusted proxy on 127.0.0.1 forwards for `client`.
async fn list_connections_for(gw: &Running, client: &str) -> reqwest::Response {
    http()
        .get(format!("http://{}/dev/@connections", gw.addr()))
        .header("x-forwarded-for", client)
        .send()
        .await
        .expect("answers")
}

#[tokio::test]
async fn a_remote_caller_of_an_unauthenticated_management_api_gets_403_naming_the_setting() {
    // The test plays a load balancer on 127.0.0.1 that forwards a remote client.
    let gw = TestGateway::builder()
        .toml("trusted_proxies = [\"127.0.0.1\"]")
        .start()
        .await;
    let remote = list_connections_for(&gw, "203.0.113.7").await;
    assert_eq!(remote.status(), 403);
    assert_eq!(
        remote.headers()["x-amzn-ErrorType"],
        "ForbiddenException",
        "boto3 raises ForbiddenException"
    );
    let message = remote.text().await.expect("body");
    assert!(
        message.contains("management.auth") && message.contains("allow_unauthenticated_remote"),
        "{message}"
    );
    // A caller on this machine is answered.
    let local = list_connections_for(&gw, "127.0.0.1").await;
    assert_eq!(local.status(), 200);
}

#[tokio::test]
async fn allow_unauthenticated_remote_opens_the_management_api_to_remote_callers() {
    let gw = TestGateway::builder()
        .toml(
            "trusted_proxies = [\"127.0.0.1\"]\n[management]\nallow_unauthenticated_remote = true",
        )
        .start()
        .await;
    assert_eq!(list_connections_for(&gw, "203.0.113.7").await.status(), 200);
}

#[tokio::test]
async fn plain_http_on_a_tls_listener_is_refused_with_400_by_default() {
    let dir = TempDir::new();
    let (cert, key, _) = write_cert(&dir.0, "tls");
    let gw = TestGateway::builder()
        .toml(&tls_toml(&cert, &key))
        .start()
        .await;
    let (mut stream, status, head) = raw_upgrade(gw.addr(), "/dev").await;
    assert_eq!(status, 400, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut rest)
        .await
        .expect("the answer, then the close");
    assert!(rest.contains("TLS only"), "{rest}");
    assert_eq!(gw.gateway.open_connections(), 0);
}

#[tokio::test]
async fn max_pending_connections_bounds_connections_before_their_upgrade() {
    let gw = TestGateway::builder()
        .toml("[limits]\nmax_pending_connections = 2\nhandshake_timeout = \"30s\"")
        .mock("$default", 200, "${request.body}", true)
        .start()
        .await;
    // Two clients connect and send nothing: both places are taken.
    let idle_one = TcpStream::connect(gw.addr()).await.expect("connects");
    let _idle_two = TcpStream::connect(gw.addr()).await.expect("connects");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let url = gw.ws_url();
    let mut third = tokio::spawn(async move { tokio_tungstenite::connect_async(url).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut third)
            .await
            .is_err(),
        "a third connection is not served while two are pending"
    );
    drop(idle_one);
    let (mut client, _) = tokio::time::timeout(WAIT, third)
        .await
        .expect("served once a place frees")
        .expect("joined")
        .expect("upgrades");
    send(&mut client, "through").await;
    assert_eq!(next_text(&mut client).await, "through");
}

/// Runs the `wsgate` binary with `args`; its exit code and stderr.
fn wsgate(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(args)
        .env("WSGATE_LOG", "error")
        .output()
        .expect("runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_fails_on_a_missing_tls_key_with_the_message_serve_fails_with() {
    let dir = TempDir::new();
    let (cert, key, _) = write_cert(&dir.0, "tls");
    std::fs::remove_file(&key).expect("removes the key");
    let config = dir.0.join("wsgate.toml");
    let mut file = std::fs::File::create(&config).expect("creates");
    std::io::Write::write_all(
        &mut file,
        format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\n{}\n",
            tls_toml(&cert, &key)
        )
        .as_bytes(),
    )
    .expect("writes");
    let config = config.to_str().expect("utf-8 path");
    let (check, check_err) = wsgate(&["check", "--config", config]);
    let (serve, serve_err) = wsgate(&["serve", "--config", config]);
    assert_eq!(
        (check, serve),
        (Some(1), Some(1)),
        "{check_err}\n{serve_err}"
    );
    let reason = format!("cannot read the key {}", key.display());
    assert!(
        check_err.contains("gateway.tls") && check_err.contains(&reason),
        "{check_err}"
    );
    assert!(
        serve_err.contains("gateway.tls") && serve_err.contains(&reason),
        "{serve_err}"
    );
}

#[test]
fn check_fails_on_an_unset_token_env_and_a_missing_function_directory() {
    let dir = TempDir::new();
    let write = |name: &str, text: &str| {
        let path = dir.0.join(name);
        std::fs::write(&path, text).expect("writes");
        path.to_str().expect("utf-8").to_owned()
    };
    let token = write(
        "token.toml",
        "[management]\nauth = \"token\"\n[[management.tokens]]\nname = \"ci\"\n\
         token_env = \"WSGATE_TEST_TOKEN_THAT_IS_NOT_SET\"\n",
    );
    let (code, stderr) = wsgate(&["check", "--config", &token]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("management.tokens[0].token_env"),
        "{stderr}"
    );
    let function = write(
        "function.toml",
        "[functions.hello]\nruntime = \"python\"\nhandler = \"app.handler\"\ndir = \"missing\"\n\
         [routes.\"$default\"]\ntype = \"function\"\nfunction = \"hello\"\n",
    );
    let (code, stderr) = wsgate(&["check", "--config", &function]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("routes.$default") && stderr.contains("does not exist"),
        "{stderr}"
    );
    let fine = write("fine.toml", "[gateway]\nlisten = \"127.0.0.1:0\"\n");
    assert_eq!(wsgate(&["check", "--config", &fine]).0, Some(0));
}

#[tokio::test]
async fn a_kept_alive_management_connection_does_not_hold_a_pending_place_forever() {
    // handshake_timeout also bounds the wait for the next request on a kept-alive connection.
    let gw = TestGateway::builder()
        .toml("[limits]\nmax_pending_connections = 1\nhandshake_timeout = \"300ms\"")
        .mock("$default", 200, "${request.body}", true)
        .start()
        .await;
    let mut kept = TcpStream::connect(gw.addr()).await.expect("connects");
    kept.write_all(b"GET /dev/@connections HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("writes");
    let head = read_head(&mut kept).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The connection stays open, idle; once the timeout drops it, a new client is served.
    let mut client = tokio::time::timeout(WAIT, gw.connect())
        .await
        .expect("served after the idle connection timed out");
    send(&mut client, "next").await;
    assert_eq!(next_text(&mut client).await, "next");
}
