//! A fast HTTP backend for the `http` integration: answers every event with a Lambda proxy
//! result whose body is the event's body (an echo); and, at `/authorizer-allow`, a REQUEST
//! authorizer answering an Allow policy for the event's `methodArn`.

use axum::Json;
use axum::Router;
use serde_json::{Value, json};

async fn echo(Json(event): Json<Value>) -> Json<Value> {
    Json(json!({"statusCode": 200, "body": event.get("body").cloned().unwrap_or(Value::Null)}))
}

async fn allow(Json(event): Json<Value>) -> Json<Value> {
    Json(json!({
        "principalId": "bench",
        "policyDocument": {"Version": "2012-10-17", "Statement": [{
            "Action": "execute-api:Invoke", "Effect": "Allow",
            "Resource": event.get("methodArn").cloned().unwrap_or(Value::Null)
        }]},
        "context": {"plan": "bench"}
    }))
}

/// Serves until killed; prints `stub listening on ADDR`.
pub async fn serve(listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("stub listening on {}", listener.local_addr()?);
    let app = Router::new()
        .route("/authorizer-allow", axum::routing::post(allow))
        .fallback(axum::routing::post(echo));
    axum::serve(listener, app).await?;
    Ok(())
}
