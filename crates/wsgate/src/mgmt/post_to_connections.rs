//! `POST @connections` with `{"connectionIds": [...], "data": "..."}` (or `"dataBase64"`): one
//! call, many recipients on any nodes, one shared frame per node. Answers which ids were sent and which are gone.

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use wsgate_core::error::MgmtError;
use wsgate_core::id::ConnectionId;

use super::params::connection_id;
use super::reply;
use crate::directory::Directory;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Batch {
    connection_ids: Vec<String>,
    data: Option<String>,
    data_base64: Option<String>,
}

pub(super) async fn run(
    directory: &Directory,
    body: &[u8],
    max_payload: usize,
    close_slow: bool,
) -> Result<Response, MgmtError> {
    let batch: Batch = serde_json::from_slice(body).map_err(|e| {
        MgmtError::BadRequest(format!(
            "Invalid request body: {e} (expected {{\"connectionIds\": [...], \"data\": \"...\"}})"
        ))
    })?;
    let data = match (batch.data, batch.data_base64) {
        (Some(text), None) => Bytes::from(text),
        (None, Some(encoded)) => Bytes::from(
            STANDARD
                .decode(encoded.as_bytes())
                .map_err(|e| MgmtError::BadRequest(format!("Invalid dataBase64: {e}")))?,
        ),
        (Some(_), Some(_)) => {
            return Err(MgmtError::BadRequest(
                "Give data or dataBase64, not both".into(),
            ));
        }
        (None, None) => return Err(MgmtError::BadRequest("Missing data or dataBase64".into())),
    };
    if data.len() > max_payload {
        return Err(MgmtError::PayloadTooLarge { limit: max_payload });
    }
    // Any malformed id fails the whole call, before anything is sent.
    let ids = batch
        .connection_ids
        .iter()
        .map(|id| connection_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    let result = directory.batch(ids, data, close_slow).await?;
    let names = |ids: Vec<ConnectionId>| ids.iter().map(|id| id.to_string()).collect::<Vec<_>>();
    let mut body = json!({"sent": names(result.sent), "gone": names(result.gone)});
    if !result.skipped.is_empty() {
        body["skipped"] = names(result.skipped).into();
    }
    Ok(reply::ok(StatusCode::OK, Some(body.to_string())))
}
