//! The Lambda-proxy events sent to integrations: `$connect` (headers and query string of the
//! upgrade request), messages and `$disconnect`, built from client-controlled strings.
//!
//! Input: structured (`arbitrary`): every string a client or the network can influence.
//!
//! `event::connect`, `message` and `disconnect` must never panic and must always produce valid
//! JSON (their serializer falls back to an empty output on error, which would be invalid JSON);
//! the values the client sent must come back unchanged.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value};
use wsgate_core::event::{
    self, ConnectionContext, ContextVars, Invocation, UpgradeRequest, canonical_header_name,
};
use wsgate_core::id::ConnectionId;
use wsgate_core::query;
use wsgate_core::route::CONTEXT_VARIABLES;

#[derive(Arbitrary, Debug)]
enum AuthValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Object(Vec<(String, String)>),
}

impl AuthValue {
    fn json(self) -> Value {
        match self {
            Self::Text(s) => Value::String(s),
            Self::Int(n) => Value::Number(n.into()),
            Self::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            Self::Bool(b) => Value::Bool(b),
            Self::Null => Value::Null,
            Self::Object(pairs) => Value::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    id: [u8; 11],
    connected_at: u64,
    time_ms: u64,
    close_code: u16,
    source_ip: String,
    user_agent: Option<String>,
    domain_name: String,
    stage: String,
    api_id: String,
    authorizer: Option<Vec<(String, AuthValue)>>,
    request_id: String,
    route_key: String,
    message_id: String,
    body: String,
    is_base64_encoded: bool,
    reason: String,
    /// Header names as hyper hands them over (lower case), canonicalized as the gateway does.
    headers: Vec<(String, String)>,
    /// Either already split pairs or a raw query string read with `query::pairs`.
    query: Option<Vec<(String, String)>>,
    raw_query: Option<String>,
}

fn parse(what: &str, bytes: &[u8]) -> Value {
    match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => panic!(
            "{what} event is not valid JSON ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fuzz_target!(|input: Input| {
    let mut encoded = [0u8; 16];
    let written = URL_SAFE
        .encode_slice(input.id, &mut encoded)
        .expect("11 bytes fit in 16");
    assert_eq!(written, 16);
    let id_text = std::str::from_utf8(&encoded).expect("base64 is ASCII");
    let connection_id = ConnectionId::parse(id_text).expect("an encoded id parses");
    assert_eq!(connection_id.node(), input.id[0]);

    let ctx = ConnectionContext {
        connection_id,
        connected_at: input.connected_at,
        source_ip: input.source_ip,
        user_agent: input.user_agent,
        domain_name: input.domain_name,
        stage: input.stage,
        api_id: input.api_id,
        authorizer: input.authorizer.map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| (k, v.json()))
                .collect::<Map<String, Value>>()
        }),
    };
    let inv = Invocation {
        request_id: &input.request_id,
        time_ms: input.time_ms,
    };
    let headers: Vec<(String, String)> = input
        .headers
        .into_iter()
        .map(|(name, value)| (canonical_header_name(&name.to_ascii_lowercase()), value))
        .collect();
    let query = match input.raw_query {
        Some(raw) => Some(query::pairs(&raw)),
        None => input.query,
    };
    let req = UpgradeRequest { headers, query };

    let connect = parse("CONNECT", &event::connect(&ctx, &inv, &req));
    assert_eq!(connect["requestContext"]["connectionId"], id_text);
    assert_eq!(connect["requestContext"]["stage"], ctx.stage.as_str());
    assert_eq!(
        connect["requestContext"]["requestId"],
        input.request_id.as_str()
    );
    if let Some((name, value)) = req.headers.last() {
        assert_eq!(connect["headers"][name], value.as_str());
    }

    let message = parse(
        "MESSAGE",
        &event::message(
            &ctx,
            &inv,
            &input.route_key,
            &input.message_id,
            &input.body,
            input.is_base64_encoded,
        ),
    );
    assert_eq!(message["body"], input.body.as_str());
    assert_eq!(
        message["requestContext"]["routeKey"],
        input.route_key.as_str()
    );
    assert_eq!(
        message["requestContext"]["messageId"],
        input.message_id.as_str()
    );
    assert_eq!(message["isBase64Encoded"], input.is_base64_encoded);

    let disconnect = parse(
        "DISCONNECT",
        &event::disconnect(&ctx, &inv, input.close_code, &input.reason),
    );
    assert_eq!(
        disconnect["requestContext"]["disconnectStatusCode"],
        input.close_code
    );
    assert_eq!(
        disconnect["requestContext"]["disconnectReason"],
        input.reason.as_str()
    );

    let vars = ContextVars {
        ctx: &ctx,
        invocation: &inv,
        route_key: &input.route_key,
        event_type: "MESSAGE",
        message_id: Some(&input.message_id),
    };
    for name in CONTEXT_VARIABLES {
        let _ = vars.get(name);
    }
    let _ = event::error_frame(event::FORBIDDEN, &connection_id, &input.request_id);
});
