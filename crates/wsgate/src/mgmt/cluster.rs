//! `GET @cluster`: this node, whether the cluster's Redis answers, and the live nodes with their
//! connection counts and last heartbeats. One node answers with itself alone.

use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::reply;
use crate::directory::Directory;

pub(super) async fn view(directory: &Directory) -> Response {
    let body = match directory.cluster() {
        Some(cluster) => cluster.view().await,
        None => json!({
            "node": null,
            "number": 0,
            "redis": null,
            "nodes": [{"nodeId": null, "number": 0, "connections": directory.hub().len(), "self": true}],
        }),
    };
    reply::ok(StatusCode::OK, Some(body.to_string()))
}
