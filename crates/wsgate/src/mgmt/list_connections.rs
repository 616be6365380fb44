//! `GET @connections?group=&user=&limit=&next=`: live connections with what `GET
//! @connections/{id}` returns plus `connectionId`, `groups` and `user`, in pages ordered by id.
//! `next` is the last id of the previous page.

use axum::response::Response;
use http::StatusCode;
use http::request::Parts;
use serde_json::{Value, json};
use wsgate_core::clock;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;
use wsgate_core::query;

use super::params::{self, connection_id};
use super::reply;
use crate::hub::Hub;

/// Items per page when `limit` is not given, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// The first value of a query parameter.
fn param(parts: &Parts, key: &str) -> Option<String> {
    query::pairs(parts.uri.query().unwrap_or_default())
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

pub(super) fn run(hub: &Hub, parts: &Parts) -> Result<Response, MgmtError> {
    let get = |key: &str| param(parts, key);
    let mut ids = match get("group") {
        Some(group) => hub.group_members(&params::name("group", &group)?),
        None => hub.ids(),
    };
    if let Some(user) = get("user") {
        let user = params::name("user", &user)?;
        let of_user = hub.user_connections(&user);
        ids.retain(|id| of_user.contains(id));
    }
    page(hub, ids, parts)
}

/// One page of `ids`, as `{"items": [...], "next": "..."}`.
pub(super) fn page(
    hub: &Hub,
    mut ids: Vec<ConnectionId>,
    parts: &Parts,
) -> Result<Response, MgmtError> {
    let limit = match param(parts, "limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(MgmtError::BadRequest(format!(
                    "Invalid limit: {text} (1 to {MAX_LIMIT})"
                )));
            }
        },
    };
    let after = param(parts, "next")
        .as_deref()
        .map(connection_id)
        .transpose()?;
    ids.sort_unstable();
    let start = after.map_or(0, |after| ids.partition_point(|id| *id <= after));
    let mut items = Vec::with_capacity(limit);
    let mut last = None;
    let mut more = false;
    for id in &ids[start..] {
        if items.len() == limit {
            more = true;
            break;
        }
        // A connection may close between the index read and here: it is simply left out.
        let Some(session) = hub.get(id) else {
            continue;
        };
        let membership = session.membership();
        let ctx = &session.ctx;
        items.push(json!({
            "connectionId": id.to_string(),
            "connectedAt": clock::iso8601(ctx.connected_at),
            "identity": {"sourceIp": ctx.source_ip, "userAgent": ctx.user_agent},
            "lastActiveAt": clock::iso8601(session.last_active_ms()),
            "groups": membership.groups.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
            "user": membership.user.as_deref(),
        }));
        last = Some(*id);
    }
    let mut body = json!({"items": items});
    if more && let Some(last) = last {
        body["next"] = Value::String(last.to_string());
    }
    Ok(reply::ok(StatusCode::OK, Some(body.to_string())))
}
