//! `POST @connections` with `{"connectionIds": [...], "data": "..."}` (or `"dataBase64"`): one
//! call, many recipients, one shared frame. Answers which ids were sent and which are gone.

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use wsgate_core::config::FanoutOverflow;
use wsgate_core::error::MgmtError;

use super::params::{connection_id, frame_of};
use super::reply;
use crate::hub::{Hub, PushError, SLOW_CONSUMER};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Batch {
    connection_ids: Vec<String>,
    data: Option<String>,
    data_base64: Option<String>,
}

pub(super) fn run(
    hub: &Hub,
    body: &[u8],
    max_payload: usize,
    overflow: FanoutOverflow,
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
    let frame = frame_of(data);
    let (mut sent, mut gone, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for id in ids {
        let Some(session) = hub.get(&id) else {
            gone.push(id.to_string());
            continue;
        };
        match session.outbox.push(frame.clone()) {
            Ok(()) => sent.push(id.to_string()),
            Err(PushError::Closed) => gone.push(id.to_string()),
            Err(PushError::Full) => {
                if overflow == FanoutOverflow::Close {
                    session.outbox.close_now(1008, SLOW_CONSUMER);
                }
                skipped.push(id.to_string());
            }
        }
    }
    let mut body = json!({"sent": sent, "gone": gone});
    if !skipped.is_empty() {
        body["skipped"] = skipped.into();
    }
    Ok(reply::ok(StatusCode::OK, Some(body.to_string())))
}
