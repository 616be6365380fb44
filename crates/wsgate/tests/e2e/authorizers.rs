//! `$connect` authorizers: REQUEST (over HTTP) and JWT, their status codes, and the authorizer
//! context on every later event of the connection.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::*;

const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:local/dev/$connect";
const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

fn allow(principal: &str, resource: &str) -> Value {
    json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}]
        },
        "context": {"tenant": "acme", "tier": 3, "beta": true}
    })
}

async fn status_of(request: impl IntoClientRequest + Unpin) -> u16 {
    match connect_async(request).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => 101,
    }
}

fn request_authorizer(stub: &Stub, extra: &str) -> String {
    format!(
        "[authorizers.byheader]\ntype = \"request\"\nurl = \"{}\"\nidentity_sources = [\"route.request.header.Authorization\", \"route.request.querystring.token\"]\n{extra}\n",
        stub.url("/auth")
    )
}

#[tokio::test]
async fn request_authorizer_context_reaches_every_event_and_names_the_user() {
    let stub = Stub::start().await;
    stub.on("/auth", Behavior::Json(200, allow("user-42", ARN)));
    let gw = TestGateway::builder()
        .toml(&request_authorizer(&stub, ""))
        .toml(&format!(
            "[routes.\"$connect\"]\ntype = \"http\"\nurl = \"{}\"\nauthorizer = \"byheader\"",
            stub.url("/connect")
        ))
        .http("$default", &stub.url("/message"), false)
        .http("$disconnect", &stub.url("/disconnect"), false)
        .start()
        .await;
    let mut request = format!("{}?token=t0k&room=1", gw.ws_url())
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("authorization", HeaderValue::from_static("Bearer abc"));
    let (mut client, _) = connect_async(request).await.expect("allowed");

    let auth = &stub.wait_events("/auth", 1).await[0];
    assert_eq!(auth["type"], "REQUEST");
    assert_eq!(auth["methodArn"], ARN);
    assert_eq!(auth["headers"]["Authorization"], "Bearer abc");
    assert_eq!(
        auth["multiValueHeaders"]["Authorization"],
        json!(["Bearer abc"])
    );
    assert_eq!(
        auth["queryStringParameters"],
        json!({"token": "t0k", "room": "1"})
    );
    assert_eq!(auth["stageVariables"], json!({}));
    assert_eq!(auth["requestContext"]["routeKey"], "$connect");
    assert_eq!(auth["requestContext"]["eventType"], "CONNECT");
    assert!(auth["requestContext"].get("authorizer").is_none());

    let expected = json!({"principalId": "user-42", "tenant": "acme", "tier": "3", "beta": "true"});
    let connect = &stub.wait_events("/connect", 1).await[0];
    assert_eq!(connect["requestContext"]["authorizer"], expected);
    let id = connect["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        auth["requestContext"]["connectionId"],
        id.as_str(),
        "the id is assigned before the authorizer runs"
    );

    send(&mut client, "hello").await;
    let message = &stub.wait_events("/message", 1).await[0];
    assert_eq!(message["requestContext"]["authorizer"], expected);

    // The principal is the connection's user.
    let sent = http()
        .post(format!("http://{}/dev/@users/user-42", gw.addr()))
        .body("to the user")
        .send()
        .await
        .expect("post");
    assert_eq!(sent.status(), 200);
    assert_eq!(next_text(&mut client).await, "to the user");

    drop(client);
    let disconnect = &stub.wait_events("/disconnect", 1).await[0];
    assert_eq!(disconnect["requestContext"]["authorizer"], expected);
}

#[tokio::test]
async fn request_authorizer_refusals_have_api_gateway_status_codes() {
    let stub = Stub::start().await;
    let gw = TestGateway::builder()
        .toml(&request_authorizer(&stub, ""))
        .toml("[routes.\"$connect\"]\nauthorizer = \"byheader\"")
        .start()
        .await;
    let with_identity = || {
        let mut request = format!("{}?token=t", gw.ws_url())
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("authorization", HeaderValue::from_static("x"));
        request
    };

    // A missing identity source: 401 without calling the authorizer.
    assert_eq!(status_of(format!("{}?token=t", gw.ws_url())).await, 401);
    assert_eq!(status_of(gw.ws_url()).await, 401);
    assert!(
        stub.events("/auth").is_empty(),
        "the authorizer was not called"
    );

    let cases = [
        (Behavior::Json(200, allow("u", ARN)), 101),
        (
            Behavior::Json(200, allow("u", "arn:aws:execute-api:*:*:*/dev/*")),
            101,
        ),
        (
            Behavior::Json(200, allow("u", "arn:aws:execute-api:*:*:other/*")),
            403,
        ),
        (
            Behavior::Json(
                200,
                json!({"principalId": "u", "policyDocument": {"Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
                    {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": ARN}
                ]}}),
            ),
            403,
        ),
        (Behavior::Text(401, "Unauthorized".into()), 401),
        (Behavior::Text(403, "no".into()), 403),
        (Behavior::Json(200, json!({"statusCode": 401})), 500),
        (Behavior::Text(200, "not json".into()), 500),
        (
            Behavior::Json(
                200,
                json!({"principalId": "u", "policyDocument": {"Statement": [{"Action": "*", "Effect": "Allow", "Resource": "*"}]}, "context": {"nested": {"a": 1}}}),
            ),
            500,
        ),
        (Behavior::Text(502, "bad gateway".into()), 500),
    ];
    for (behavior, status) in cases {
        stub.on("/auth", behavior.clone());
        assert_eq!(status_of(with_identity()).await, status, "{behavior:?}");
    }
}

#[tokio::test]
async fn an_unreachable_authorizer_is_a_500() {
    let gw = TestGateway::builder()
        .toml("[authorizers.a]\ntype = \"request\"\nurl = \"http://127.0.0.1:9/auth\"")
        .toml("[routes.\"$connect\"]\nauthorizer = \"a\"")
        .start()
        .await;
    assert_eq!(status_of(gw.ws_url()).await, 500);
}

#[tokio::test]
async fn cached_outputs_are_reused_per_identity() {
    let stub = Stub::start().await;
    stub.on("/auth", Behavior::Json(200, allow("u", "*")));
    let gw = TestGateway::builder()
        .toml(&format!(
            "[authorizers.a]\ntype = \"request\"\nurl = \"{}\"\nidentity_sources = [\"route.request.querystring.token\"]\ncache_ttl = \"1m\"",
            stub.url("/auth")
        ))
        .toml("[routes.\"$connect\"]\nauthorizer = \"a\"")
        .start()
        .await;
    for token in ["one", "one", "two", "one"] {
        assert_eq!(
            status_of(format!("{}?token={token}", gw.ws_url())).await,
            101
        );
    }
    assert_eq!(stub.events("/auth").len(), 2, "one call per identity");
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": "https://issuer.example", "aud": "my-api", "exp": now() + 600, "scope": "chat", "n": 7})
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("key"),
    )
    .expect("encode")
}

fn jwt_gateway(keys: &str) -> TestGateway {
    jwt_gateway_expecting(
        keys,
        "issuer = \"https://issuer.example\"\naudience = \"my-api\"",
    )
}

/// A gateway whose JWT authorizer has these keys and expects these claims.
fn jwt_gateway_expecting(keys: &str, expected: &str) -> TestGateway {
    TestGateway::builder()
        .toml(&format!(
            "[authorizers.tokens]\ntype = \"jwt\"\n{keys}\n{expected}\nleeway = \"5s\""
        ))
        .toml("[routes.\"$connect\"]\nauthorizer = \"tokens\"")
        .mock(
            "whoami",
            200,
            "${context.authorizer.principalId} ${context.authorizer.scope}",
            true,
        )
        .mock("$default", 200, "${request.body}", true)
}

#[tokio::test]
async fn jwt_tokens_are_checked_and_their_claims_become_the_context() {
    let gw = jwt_gateway(&format!("hs256_secret = \"{SECRET}\""))
        .start()
        .await;
    let url = |token: &str| format!("{}?token={token}", gw.ws_url());

    let (mut client, _) = connect_async(url(&hs256(&claims("alice"), SECRET)))
        .await
        .expect("a valid token connects");
    send(&mut client, r#"{"action":"whoami"}"#).await;
    assert_eq!(next_text(&mut client).await, "alice chat");

    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 60);
    let mut early = claims("alice");
    early["nbf"] = json!(now() + 600);
    let mut wrong_issuer = claims("alice");
    wrong_issuer["iss"] = json!("https://evil.example");
    let mut wrong_audience = claims("alice");
    wrong_audience["aud"] = json!("other-api");
    let mut no_exp = claims("alice");
    no_exp.as_object_mut().expect("object").remove("exp");
    let forged = hs256(&claims("alice"), "another-secret-of-at-least-32-bytes");
    // `alg: none` with the signature stripped.
    let valid = hs256(&claims("alice"), SECRET);
    let payload = valid.split('.').nth(1).expect("payload");
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    for (what, token) in [
        ("expired", hs256(&expired, SECRET)),
        ("not yet valid", hs256(&early, SECRET)),
        ("wrong issuer", hs256(&wrong_issuer, SECRET)),
        ("wrong audience", hs256(&wrong_audience, SECRET)),
        ("no exp", hs256(&no_exp, SECRET)),
        ("forged", forged),
        ("alg none", unsigned),
        ("garbage", "not-a-token".into()),
        ("missing", String::new()),
    ] {
        assert_eq!(status_of(url(&token)).await, 401, "{what}");
    }
    assert_eq!(status_of(gw.ws_url()).await, 401, "no token at all");
}

fn es256_key() -> (EncodingKey, Jwk) {
    let pair = rcgen::KeyPair::generate().expect("key");
    let key = EncodingKey::from_ec_der(&pair.serialize_der());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).expect("jwk");
    jwk.common.key_id = Some("ec-1".into());
    (key, jwk)
}

fn rs256_key() -> (EncodingKey, Jwk) {
    let pem = include_bytes!("../fixtures/jwt-rsa-test-key.pem");
    let key = EncodingKey::from_rsa_pem(pem).expect("rsa key");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some("rsa-1".into());
    (key, jwk)
}

fn signed(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).expect("encode")
}

#[tokio::test]
async fn jwks_files_verify_rs256_and_es256_and_the_subprotocol_carries_the_token() {
    let (ec, ec_jwk) = es256_key();
    let (rsa, rsa_jwk) = rs256_key();
    let dir = std::env::temp_dir().join(format!("wsgate-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let jwks = dir.join("jwks-file-test.json");
    let set = JwkSet {
        keys: vec![ec_jwk, rsa_jwk],
    };
    std::fs::write(&jwks, serde_json::to_vec(&set).expect("json")).expect("write");
    let gw = jwt_gateway(&format!("jwks_file = \"{}\"", jwks.display()))
        .start()
        .await;

    for token in [
        signed(Algorithm::ES256, "ec-1", &ec, &claims("eve")),
        signed(Algorithm::RS256, "rsa-1", &rsa, &claims("rob")),
    ] {
        // A browser offers the token as a subprotocol beside the one it speaks.
        let mut request = gw.ws_url().into_client_request().expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&format!("chat, {token}")).expect("header"),
        );
        let (mut client, response) = connect_async(request).await.expect("connects");
        assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
        send(&mut client, r#"{"action":"whoami"}"#).await;
        let who = next_text(&mut client).await;
        assert!(who == "eve chat" || who == "rob chat", "{who}");

        // Offered alone, the token itself is echoed (a browser needs one of its own back).
        let mut request = gw.ws_url().into_client_request().expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&token).expect("header"),
        );
        let (_client, response) = connect_async(request).await.expect("connects");
        assert_eq!(response.headers()["sec-websocket-protocol"], token.as_str());
    }

    // A token signed by a key the JWKS lacks, under a known kid; and RS256 claimed for an EC key.
    let (other, _) = es256_key();
    let forged = signed(Algorithm::ES256, "ec-1", &other, &claims("eve"));
    assert_eq!(
        status_of(format!("{}?token={forged}", gw.ws_url())).await,
        401
    );
    let confused = signed(Algorithm::RS256, "ec-1", &rsa, &claims("eve"));
    assert_eq!(
        status_of(format!("{}?token={confused}", gw.ws_url())).await,
        401
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stub serving a JWKS of one ES256 key (`kid` `ec-1`) at `/jwks`, and that key.
async fn one_key_jwks() -> (EncodingKey, Stub) {
    let (key, jwk) = es256_key();
    let stub = Stub::start().await;
    let set = serde_json::to_value(JwkSet { keys: vec![jwk] }).expect("json");
    stub.on("/jwks", Behavior::Json(200, set));
    (key, stub)
}

/// The attack: an identity provider signs the tokens of all its applications (and, for a
/// multi-tenant one, of all its tenants) with the keys of one JWKS. A token signed by the right
/// key but made for another application (`aud`) or by another tenant (`iss`), or one that leaves
/// the claim out, must not open a connection; `"*"` accepts any only when written on purpose.
#[tokio::test]
async fn tokens_of_the_same_keys_for_another_audience_or_issuer_are_refused() {
    let (key_pair, stub) = one_key_jwks().await;
    let keys = format!("jwks_url = \"{}\"", stub.url("/jwks"));
    // Our claims, with `key` set to `value` or (`None`) left out.
    let token = |key: &str, value: Option<Value>| {
        let mut claims = claims("mallory");
        let map = claims.as_object_mut().expect("object");
        match value {
            Some(value) => map.insert(key.into(), value),
            None => map.remove(key),
        };
        signed(Algorithm::ES256, "ec-1", &key_pair, &claims)
    };
    let ours = signed(Algorithm::ES256, "ec-1", &key_pair, &claims("mallory"));
    let listed = token("aud", Some(json!(["other-app", "my-api"])));
    let other_app = token("aud", Some(json!("other-app")));
    let other_tenant = token("iss", Some(json!("https://tenant-b.example")));
    let no_aud = token("aud", None);
    let no_iss = token("iss", None);
    let status = |gw: &Running, token: &str| status_of(format!("{}?token={token}", gw.ws_url()));

    let strict = jwt_gateway(&keys).start().await;
    for (what, token, expected) in [
        ("for this API", &ours, 101),
        ("one of its audiences is this API", &listed, 101),
        ("for another application", &other_app, 401),
        ("from another issuer", &other_tenant, 401),
        ("without aud", &no_aud, 401),
        ("without iss", &no_iss, 401),
    ] {
        assert_eq!(status(&strict, token).await, expected, "{what}");
    }

    let any_audience = jwt_gateway_expecting(
        &keys,
        "issuer = \"https://issuer.example\"\naudience = \"*\"",
    )
    .start()
    .await;
    for (what, token, expected) in [
        ("for another application", &other_app, 101),
        ("without aud", &no_aud, 101),
        ("from another issuer", &other_tenant, 401),
    ] {
        assert_eq!(
            status(&any_audience, token).await,
            expected,
            "audience = \"*\": {what}"
        );
    }

    let anything = jwt_gateway_expecting(&keys, "issuer = \"*\"\naudience = \"*\"")
        .start()
        .await;
    for token in [&other_app, &other_tenant, &no_aud, &no_iss] {
        assert_eq!(
            status(&anything, token).await,
            101,
            "issuer = audience = \"*\""
        );
    }
}

#[tokio::test]
async fn jwks_urls_are_cached_and_fetched_again_for_a_new_key() {
    let (first, first_jwk) = es256_key();
    let (second, mut second_jwk) = es256_key();
    second_jwk.common.key_id = Some("ec-2".into());
    let stub = Stub::start().await;
    stub.on(
        "/jwks",
        Behavior::Json(
            200,
            serde_json::to_value(JwkSet {
                keys: vec![first_jwk.clone()],
            })
            .expect("json"),
        ),
    );
    let gw = jwt_gateway(&format!("jwks_url = \"{}\"", stub.url("/jwks")))
        .start()
        .await;
    let url = |token: &str| format!("{}?token={token}", gw.ws_url());
    for sub in ["a", "b"] {
        let token = signed(Algorithm::ES256, "ec-1", &first, &claims(sub));
        assert_eq!(status_of(url(&token)).await, 101);
    }
    assert_eq!(stub.events("/jwks").len(), 1, "the JWKS is cached");

    // The issuer rotates its keys: a token with the new kid makes the gateway fetch again.
    stub.on(
        "/jwks",
        Behavior::Json(
            200,
            serde_json::to_value(JwkSet {
                keys: vec![first_jwk, second_jwk],
            })
            .expect("json"),
        ),
    );
    let token = signed(Algorithm::ES256, "ec-2", &second, &claims("c"));
    assert_eq!(status_of(url(&token)).await, 101);
    assert_eq!(stub.events("/jwks").len(), 2);
    // An unknown kid right after does not fetch again (at most every 10 s).
    let (third, _) = es256_key();
    let token = signed(Algorithm::ES256, "ec-3", &third, &claims("d"));
    assert_eq!(status_of(url(&token)).await, 401);
    assert_eq!(stub.events("/jwks").len(), 2);
}

#[tokio::test]
async fn a_reload_keeps_the_keys_of_an_unchanged_jwks_url() {
    let (key, stub) = one_key_jwks().await;
    let builder = jwt_gateway(&format!("jwks_url = \"{}\"", stub.url("/jwks")));
    let same = builder.config();
    let gw = builder.start().await;
    let token = signed(Algorithm::ES256, "ec-1", &key, &claims("a"));
    let url = format!("{}?token={token}", gw.ws_url());
    assert_eq!(status_of(url.as_str()).await, 101);
    assert_eq!(stub.events("/jwks").len(), 1);

    // The issuer is down while the config is reloaded: the keys fetched before still verify,
    // and nothing is fetched.
    stub.on("/jwks", Behavior::Text(503, "down".into()));
    gw.gateway.reload(same).expect("reloads");
    assert_eq!(status_of(url.as_str()).await, 101);
    assert_eq!(stub.events("/jwks").len(), 1);

    // Another URL starts afresh (and, unreachable, fails closed).
    let other = jwt_gateway(&format!("jwks_url = \"{}\"", stub.url("/other-jwks"))).config();
    stub.on("/other-jwks", Behavior::Text(503, "down".into()));
    gw.gateway.reload(other).expect("reloads");
    assert_eq!(status_of(url.as_str()).await, 500);
}

#[tokio::test]
async fn a_jwks_url_that_cannot_be_fetched_refuses_with_500() {
    let gw = jwt_gateway("jwks_url = \"http://127.0.0.1:9/jwks\"")
        .start()
        .await;
    let token = hs256(&claims("a"), SECRET);
    assert_eq!(
        status_of(format!("{}?token={token}", gw.ws_url())).await,
        500
    );
}

#[tokio::test]
async fn gateway_region_is_the_region_of_the_method_arn() {
    let stub = Stub::start().await;
    let arn = "arn:aws:execute-api:eu-west-1:000000000000:local/dev/$connect";
    stub.on("/auth", Behavior::Json(200, allow("user-7", arn)));
    let gw = TestGateway::builder()
        .toml("region = \"eu-west-1\"\n")
        .toml(&request_authorizer(&stub, ""))
        .toml("[routes.\"$connect\"]\nauthorizer = \"byheader\"")
        .start()
        .await;
    let mut request = format!("{}?token=t", gw.ws_url())
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("authorization", HeaderValue::from_static("Bearer abc"));
    connect_async(request).await.expect("allowed");
    let auth = &stub.wait_events("/auth", 1).await[0];
    assert_eq!(auth["methodArn"], arn);
}
