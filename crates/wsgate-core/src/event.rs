//! The Lambda-proxy events API Gateway sends for WebSocket routes: CONNECT, MESSAGE and
//! DISCONNECT, in the modern (2022+) form: fields that do not apply are omitted, not `null`.
//!
//! Key order follows the real captures (JSON order carries no meaning, but it makes diffing
//! against AWS events easy).

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::clock;
use crate::id::ConnectionId;

/// What stays the same for every event of one connection. A cluster keeps a copy in Redis, so
/// that a survivor can tell `$disconnect` of a dead node's connections as they were (one-letter
/// keys: that copy is what Redis stores per connection).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ConnectionContext {
    /// The connection's id.
    #[serde(rename = "i")]
    pub connection_id: ConnectionId,
    /// Epoch milliseconds of the connection.
    #[serde(rename = "t")]
    pub connected_at: u64,
    /// The TCP peer's address.
    #[serde(rename = "s")]
    pub source_ip: String,
    /// The upgrade request's `User-Agent`, if any.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The host the client used (`Host` of the upgrade request) or the configured domain.
    #[serde(rename = "d")]
    pub domain_name: String,
    /// The stage name.
    #[serde(rename = "g")]
    pub stage: String,
    /// The API id.
    #[serde(rename = "a")]
    pub api_id: String,
    /// `principalId` and the authorizer's context, values as strings, when an authorizer ran.
    #[serde(rename = "z", default, skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<Map<String, Value>>,
}

/// The parts of the upgrade request that the CONNECT event carries.
#[derive(Debug, Clone, Default)]
pub struct UpgradeRequest {
    /// Headers in arrival order, names in their canonical casing.
    pub headers: Vec<(String, String)>,
    /// Query parameters in order; `None` when the URL had no query string.
    pub query: Option<Vec<(String, String)>>,
}

/// The identifiers and time of one invocation.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// `requestId`, equal to `extendedRequestId`.
    pub request_id: &'a str,
    /// Epoch milliseconds of the request.
    pub time_ms: u64,
}

#[derive(Serialize)]
struct Identity<'a> {
    #[serde(rename = "userAgent", skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(rename = "sourceIp")]
    source_ip: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    route_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizer: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnect_status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    event_type: &'static str,
    extended_request_id: &'a str,
    request_time: String,
    message_direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnect_reason: Option<&'a str>,
    stage: &'a str,
    connected_at: u64,
    request_time_epoch: u64,
    identity: Identity<'a>,
    request_id: &'a str,
    domain_name: &'a str,
    connection_id: &'a str,
    api_id: &'a str,
}

impl<'a> RequestContext<'a> {
    fn new(
        ctx: &'a ConnectionContext,
        inv: &Invocation<'a>,
        route_key: &'a str,
        event_type: &'static str,
    ) -> Self {
        Self {
            route_key,
            authorizer: ctx.authorizer.as_ref(),
            disconnect_status_code: None,
            message_id: None,
            event_type,
            extended_request_id: inv.request_id,
            request_time: clock::clf(inv.time_ms),
            message_direction: "IN",
            disconnect_reason: None,
            stage: &ctx.stage,
            connected_at: ctx.connected_at,
            request_time_epoch: inv.time_ms,
            identity: Identity {
                user_agent: ctx.user_agent.as_deref(),
                source_ip: &ctx.source_ip,
            },
            request_id: inv.request_id,
            domain_name: &ctx.domain_name,
            connection_id: ctx.connection_id.as_str(),
            api_id: &ctx.api_id,
        }
    }
}

/// The `${context.NAME}` variables of one invocation, for mock templates.
#[derive(Debug, Clone, Copy)]
pub struct ContextVars<'a> {
    /// The connection.
    pub ctx: &'a ConnectionContext,
    /// The invocation.
    pub invocation: &'a Invocation<'a>,
    /// The route key.
    pub route_key: &'a str,
    /// `CONNECT`, `MESSAGE` or `DISCONNECT`.
    pub event_type: &'a str,
    /// The message id, for MESSAGE.
    pub message_id: Option<&'a str>,
}

impl ContextVars<'_> {
    /// The value of `${context.NAME}` (see `route::CONTEXT_VARIABLES`).
    pub fn get(&self, name: &str) -> Option<String> {
        let ctx = self.ctx;
        Some(match name {
            "connectionId" => ctx.connection_id.to_string(),
            "requestId" => self.invocation.request_id.to_owned(),
            "messageId" => self.message_id?.to_owned(),
            "routeKey" => self.route_key.to_owned(),
            "eventType" => self.event_type.to_owned(),
            "stage" => ctx.stage.clone(),
            "apiId" => ctx.api_id.clone(),
            "domainName" => ctx.domain_name.clone(),
            "connectedAt" => ctx.connected_at.to_string(),
            "requestTimeEpoch" => self.invocation.time_ms.to_string(),
            "identity.sourceIp" => ctx.source_ip.clone(),
            "identity.userAgent" => ctx.user_agent.clone()?,
            _ => {
                let key = name.strip_prefix("authorizer.")?;
                match ctx.authorizer.as_ref()?.get(key)? {
                    Value::String(text) => text.clone(),
                    _ => return None,
                }
            }
        })
    }
}

/// Pairs serialized as a JSON object, last value winning, in order of first appearance.
struct Single<'a>(&'a [(String, String)]);
/// Pairs serialized as a JSON object of arrays, grouped by name.
struct Multi<'a>(&'a [(String, String)]);

fn grouped(pairs: &[(String, String)]) -> Vec<(&str, Vec<&str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for (k, v) in pairs {
        match out.iter_mut().find(|(name, _)| *name == k) {
            Some((_, values)) => values.push(v),
            None => out.push((k, vec![v])),
        }
    }
    out
}

impl Serialize for Single<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let groups = grouped(self.0);
        let mut map = s.serialize_map(Some(groups.len()))?;
        for (k, values) in groups {
            map.serialize_entry(k, values.last().copied().unwrap_or_default())?;
        }
        map.end()
    }
}

impl Serialize for Multi<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let groups = grouped(self.0);
        let mut map = s.serialize_map(Some(groups.len()))?;
        for (k, values) in groups {
            map.serialize_entry(k, &values)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Single<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    multi_value_headers: Option<Multi<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_string_parameters: Option<Single<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    multi_value_query_string_parameters: Option<Multi<'a>>,
    request_context: RequestContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    is_base64_encoded: bool,
}

fn to_bytes(event: &Event<'_>) -> Vec<u8> {
    // Serializing plain structs and strings into a Vec cannot fail.
    serde_json::to_vec(event).unwrap_or_default()
}

/// The `$connect` event.
pub fn connect(ctx: &ConnectionContext, inv: &Invocation<'_>, req: &UpgradeRequest) -> Vec<u8> {
    let query = req.query.as_deref().filter(|q| !q.is_empty());
    to_bytes(&Event {
        headers: Some(Single(&req.headers)),
        multi_value_headers: Some(Multi(&req.headers)),
        query_string_parameters: query.map(Single),
        multi_value_query_string_parameters: query.map(Multi),
        request_context: RequestContext::new(ctx, inv, "$connect", "CONNECT"),
        body: None,
        is_base64_encoded: false,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizerEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    method_arn: &'a str,
    headers: Single<'a>,
    multi_value_headers: Multi<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_string_parameters: Option<Single<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    multi_value_query_string_parameters: Option<Multi<'a>>,
    stage_variables: Map<String, Value>,
    request_context: RequestContext<'a>,
}

/// The event of a REQUEST authorizer on `$connect`: the upgrade's headers and query, and
/// `methodArn` (`arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/$connect`).
pub fn authorizer_request(
    ctx: &ConnectionContext,
    inv: &Invocation<'_>,
    req: &UpgradeRequest,
    method_arn: &str,
) -> Vec<u8> {
    let query = req.query.as_deref().filter(|q| !q.is_empty());
    let mut request_context = RequestContext::new(ctx, inv, "$connect", "CONNECT");
    request_context.authorizer = None;
    serde_json::to_vec(&AuthorizerEvent {
        kind: "REQUEST",
        method_arn,
        headers: Single(&req.headers),
        multi_value_headers: Multi(&req.headers),
        query_string_parameters: query.map(Single),
        multi_value_query_string_parameters: query.map(Multi),
        stage_variables: Map::new(),
        request_context,
    })
    .unwrap_or_default()
}

/// A message event for `route_key`; `body` is the text frame, or base64 of a binary frame.
pub fn message(
    ctx: &ConnectionContext,
    inv: &Invocation<'_>,
    route_key: &str,
    message_id: &str,
    body: &str,
    is_base64_encoded: bool,
) -> Vec<u8> {
    let mut request_context = RequestContext::new(ctx, inv, route_key, "MESSAGE");
    request_context.message_id = Some(message_id);
    to_bytes(&Event {
        headers: None,
        multi_value_headers: None,
        query_string_parameters: None,
        multi_value_query_string_parameters: None,
        request_context,
        body: Some(body),
        is_base64_encoded,
    })
}

/// The `$disconnect` event, with the four synthetic headers API Gateway sends.
pub fn disconnect(
    ctx: &ConnectionContext,
    inv: &Invocation<'_>,
    code: u16,
    reason: &str,
) -> Vec<u8> {
    let headers = [
        ("Host".to_owned(), ctx.domain_name.clone()),
        ("x-api-key".to_owned(), String::new()),
        ("X-Forwarded-For".to_owned(), String::new()),
        ("x-restapi".to_owned(), String::new()),
    ];
    let mut request_context = RequestContext::new(ctx, inv, "$disconnect", "DISCONNECT");
    request_context.disconnect_status_code = Some(code);
    request_context.disconnect_reason = Some(reason);
    to_bytes(&Event {
        headers: Some(Single(&headers)),
        multi_value_headers: Some(Multi(&headers)),
        query_string_parameters: None,
        multi_value_query_string_parameters: None,
        request_context,
        body: None,
        is_base64_encoded: false,
    })
}

/// Canonical casing for a header name: hyper hands us lower case, and events carry the casing
/// clients send (`Sec-WebSocket-Key`, `User-Agent`). Known names get their usual spelling; the
/// rest are title-cased at each `-`.
pub fn canonical_header_name(lower: &str) -> String {
    const KNOWN: &[&str] = &[
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Accept",
        "X-Amzn-Trace-Id",
        "X-Forwarded-For",
        "X-Forwarded-Port",
        "X-Forwarded-Proto",
        "WWW-Authenticate",
        "DNT",
        "ETag",
        "TE",
    ];
    if let Some(known) = KNOWN.iter().find(|k| k.eq_ignore_ascii_case(lower)) {
        return (*known).to_owned();
    }
    let mut out = String::with_capacity(lower.len());
    let mut upper = true;
    for c in lower.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper = c == '-';
    }
    out
}

/// The text of an error frame, byte for byte as API Gateway sends it (note the spacing).
pub fn error_frame(message: &str, connection_id: &ConnectionId, request_id: &str) -> String {
    format!(
        r#"{{"message": "{message}", "connectionId":"{connection_id}", "requestId":"{request_id}"}}"#
    )
}

/// `Forbidden`: no route matched and there is no `$default`.
pub const FORBIDDEN: &str = "Forbidden";
/// `Internal server error`: the integration failed.
pub const INTERNAL_SERVER_ERROR: &str = "Internal server error";
/// `Endpoint request timed out`: the integration did not answer in time.
pub const ENDPOINT_REQUEST_TIMED_OUT: &str = "Endpoint request timed out";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> ConnectionContext {
        ConnectionContext {
            connection_id: ConnectionId::parse("Vb1qPcW2DoECK-w=").expect("valid"),
            connected_at: 1_716_559_329_114,
            source_ip: "198.51.100.23".into(),
            user_agent: Some("Mozilla/5.0".into()),
            domain_name: "k3x9q2m7ab.execute-api.eu-west-1.amazonaws.com".into(),
            stage: "prod".into(),
            api_id: "k3x9q2m7ab".into(),
            authorizer: None,
        }
    }

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("valid json")
    }

    #[test]
    fn connect_event_matches_the_capture_shape() {
        let req = UpgradeRequest {
            headers: vec![
                (
                    "Host".into(),
                    "k3x9q2m7ab.execute-api.eu-west-1.amazonaws.com".into(),
                ),
                (
                    "Sec-WebSocket-Key".into(),
                    "q4xkcO32u266gldTuKaSOw==".into(),
                ),
                ("X-Multi".into(), "a".into()),
                ("X-Multi".into(), "b".into()),
            ],
            query: Some(vec![
                ("room".into(), "lobby".into()),
                ("room".into(), "hall".into()),
            ]),
        };
        let inv = Invocation {
            request_id: "Vb1qQF0hjMFXywA=",
            time_ms: 1_716_559_329_115,
        };
        let event = parse(&connect(&ctx(), &inv, &req));
        assert_eq!(
            event,
            json!({
                "headers": {"Host": "k3x9q2m7ab.execute-api.eu-west-1.amazonaws.com", "Sec-WebSocket-Key": "q4xkcO32u266gldTuKaSOw==", "X-Multi": "b"},
                "multiValueHeaders": {"Host": ["k3x9q2m7ab.execute-api.eu-west-1.amazonaws.com"], "Sec-WebSocket-Key": ["q4xkcO32u266gldTuKaSOw=="], "X-Multi": ["a", "b"]},
                "queryStringParameters": {"room": "hall"},
                "multiValueQueryStringParameters": {"room": ["lobby", "hall"]},
                "requestContext": {
                    "routeKey": "$connect",
                    "eventType": "CONNECT",
                    "extendedRequestId": "Vb1qQF0hjMFXywA=",
                    "requestTime": "24/May/2024:14:02:09 +0000",
                    "messageDirection": "IN",
                    "stage": "prod",
                    "connectedAt": 1_716_559_329_114u64,
                    "requestTimeEpoch": 1_716_559_329_115u64,
                    "identity": {"userAgent": "Mozilla/5.0", "sourceIp": "198.51.100.23"},
                    "requestId": "Vb1qQF0hjMFXywA=",
                    "domainName": "k3x9q2m7ab.execute-api.eu-west-1.amazonaws.com",
                    "connectionId": "Vb1qPcW2DoECK-w=",
                    "apiId": "k3x9q2m7ab"
                },
                "isBase64Encoded": false
            })
        );
        // Key order follows the capture.
        let text = String::from_utf8(connect(&ctx(), &inv, &req)).expect("utf8");
        let order = [
            "\"headers\"",
            "\"multiValueHeaders\"",
            "\"queryStringParameters\"",
            "\"requestContext\"",
            "\"isBase64Encoded\"",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|k| text.find(k).expect("present"))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn connect_without_query_string_omits_query_fields() {
        let inv = Invocation {
            request_id: "Vb1qQF0hjMFXywA=",
            time_ms: 1,
        };
        let event = parse(&connect(&ctx(), &inv, &UpgradeRequest::default()));
        assert!(event.get("queryStringParameters").is_none());
        assert!(event.get("multiValueQueryStringParameters").is_none());
        assert!(event.get("body").is_none());
        assert!(event["requestContext"].get("messageId").is_none());
    }

    #[test]
    fn message_event_has_body_and_message_id_and_no_headers() {
        let mut c = ctx();
        c.authorizer = Some(
            json!({"principalId": "user-42", "tier": "3"})
                .as_object()
                .cloned()
                .expect("object"),
        );
        let inv = Invocation {
            request_id: "Vb1rAH17NjMFfTw=",
            time_ms: 1_716_559_335_480,
        };
        let event = parse(&message(
            &c,
            &inv,
            "sendmessage",
            "Vb1rAc2ntjMCFAQ=",
            r#"{"action":"sendmessage"}"#,
            false,
        ));
        assert!(event.get("headers").is_none());
        assert_eq!(event["body"], r#"{"action":"sendmessage"}"#);
        assert_eq!(event["isBase64Encoded"], false);
        let rc = &event["requestContext"];
        assert_eq!(rc["routeKey"], "sendmessage");
        assert_eq!(rc["eventType"], "MESSAGE");
        assert_eq!(rc["messageId"], "Vb1rAc2ntjMCFAQ=");
        assert_eq!(rc["requestId"], rc["extendedRequestId"]);
        assert_eq!(rc["authorizer"]["principalId"], "user-42");
        assert!(rc.get("disconnectStatusCode").is_none());
    }

    #[test]
    fn disconnect_event_has_synthetic_headers_and_close_code() {
        let mut c = ctx();
        c.user_agent = None;
        let inv = Invocation {
            request_id: "Vb1xZHsUtjMFbQw=",
            time_ms: 1_716_559_791_002,
        };
        let event = parse(&disconnect(
            &c,
            &inv,
            1005,
            "Client-side close frame status not set",
        ));
        assert_eq!(
            event["headers"],
            json!({"Host": "k3x9q2m7ab.execute-api.eu-west-1.amazonaws.com", "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""})
        );
        assert_eq!(event["multiValueHeaders"]["x-restapi"], json!([""]));
        let rc = &event["requestContext"];
        assert_eq!(rc["disconnectStatusCode"], 1005);
        assert_eq!(
            rc["disconnectReason"],
            "Client-side close frame status not set"
        );
        assert_eq!(rc["eventType"], "DISCONNECT");
        assert_eq!(rc["identity"], json!({"sourceIp": "198.51.100.23"}));
        assert!(event.get("body").is_none());
    }

    #[test]
    fn header_names_get_canonical_casing() {
        assert_eq!(
            canonical_header_name("sec-websocket-key"),
            "Sec-WebSocket-Key"
        );
        assert_eq!(canonical_header_name("user-agent"), "User-Agent");
        assert_eq!(canonical_header_name("host"), "Host");
        assert_eq!(canonical_header_name("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(canonical_header_name("authorization"), "Authorization");
    }

    #[test]
    fn error_frames_are_byte_for_byte() {
        let id = ConnectionId::parse("Vb1qPcW2DoECK-w=").expect("valid");
        assert_eq!(
            error_frame(FORBIDDEN, &id, "Vb1rAH17NjMFfTw="),
            r#"{"message": "Forbidden", "connectionId":"Vb1qPcW2DoECK-w=", "requestId":"Vb1rAH17NjMFfTw="}"#
        );
        assert_eq!(
            error_frame(INTERNAL_SERVER_ERROR, &id, "x"),
            r#"{"message": "Internal server error", "connectionId":"Vb1qPcW2DoECK-w=", "requestId":"x"}"#
        );
    }
}
