//! `GET @connections?group=&user=&ip=&limit=&next=`: live connections with what `GET
//! @connections/{id}` returns plus `connectionId`, `groups`, `user` and `authorizer`, in pages
//! ordered by id, from every node; `ip` keeps those whose `identity.sourceIp` it is.
//! `next` is the last id of the previous page.

use axum::response::Response;
use http::StatusCode;
use http::request::Parts;
use serde_json::json;
use wsgate_core::error::MgmtError;
use wsgate_core::query;

use super::params::{self, connection_id};
use super::reply;
use crate::directory::Directory;

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

pub(super) async fn run(directory: &Directory, parts: &Parts) -> Result<Response, MgmtError> {
    let group = param(parts, "group")
        .map(|group| params::name("group", &group))
        .transpose()?;
    let user = param(parts, "user")
        .map(|user| params::name("user", &user))
        .transpose()?;
    page(directory, group, user, parts).await
}

/// One page of the connections in `group` and of `user` (when given), from every node, as
/// `{"items": [...], "next": "..."}`.
pub(super) async fn page(
    directory: &Directory,
    group: Option<String>,
    user: Option<String>,
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
    let ip = match param(parts, "ip") {
        None => None,
        Some(text) => match text.parse::<std::net::IpAddr>() {
            Ok(ip) => Some(ip.to_string()),
            Err(_) => {
                return Err(MgmtError::BadRequest(format!(
                    "Invalid ip: {text} (an IPv4 or IPv6 address)"
                )));
            }
        },
    };
    let (items, more) = directory.list(group, user, ip, (after, limit)).await?;
    let next = more
        .then(|| {
            items
                .last()
                .and_then(|item| item.get("connectionId").cloned())
        })
        .flatten();
    let mut body = json!({"items": items});
    if let Some(next) = next {
        body["next"] = next;
    }
    Ok(reply::ok(StatusCode::OK, Some(body.to_string())))
}
