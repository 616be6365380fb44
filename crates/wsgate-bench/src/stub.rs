//! A fast HTTP backend for the `http` integration: answers every event with a Lambda proxy
//! result whose body is the event's body (an echo).

use axum::Json;
use axum::Router;
use serde_json::{Value, json};

async fn echo(Json(event): Json<Value>) -> Json<Value> {
    Json(json!({"statusCode": 200, "body": event.get("body").cloned().unwrap_or(Value::Null)}))
}

/// Serves until killed; prints `stub listening on ADDR`.
pub async fn serve(listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("stub listening on {}", listener.local_addr()?);
    axum::serve(listener, Router::new().fallback(axum::routing::post(echo))).await?;
    Ok(())
}
