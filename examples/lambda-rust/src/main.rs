//! A WebSocket route handler written for AWS Lambda with the `lambda_runtime` crate: it answers
//! with the message it got, its route key and its connection id. wsgate runs the same binary
//! through the Lambda Runtime API (`runtime = "command"`), as Lambda runs it.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let body = json!({
        "echo": payload["body"],
        "route": payload["requestContext"]["routeKey"],
        "connectionId": payload["requestContext"]["connectionId"],
        "requestId": context.request_id,
        "function": context.env_config.function_name,
    });
    Ok(json!({"statusCode": 200, "body": body.to_string()}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
