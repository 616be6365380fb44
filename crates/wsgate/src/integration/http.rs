//! The `http` integration: POST the exact Lambda-proxy event as JSON to a URL and read the answer
//! as a proxy result (or, failing that, as status + raw body).

use std::time::Duration;

use wsgate_core::proxy::{self, ProxyResult};

use super::IntegrationError;

/// Backend answers larger than this are refused: nothing the gateway can send is larger than a
/// few route responses, and an unbounded read would let one backend exhaust memory.
const MAX_ANSWER_BYTES: usize = 10 * 1024 * 1024;

/// POSTs events to one URL through the gateway's shared, pooled client.
#[derive(Debug)]
pub struct HttpIntegration {
    url: reqwest::Url,
    timeout: Duration,
    client: reqwest::Client,
}

impl HttpIntegration {
    /// An integration for `url` with its own timeout.
    pub fn new(url: &str, timeout: Duration, client: reqwest::Client) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        Ok(Self {
            url,
            timeout,
            client,
        })
    }

    /// Sends the event; the timeout covers connecting, the answer's headers and its body.
    pub async fn call(&self, event: Vec<u8>) -> Result<ProxyResult, IntegrationError> {
        let work = async {
            let response = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(event)
                .send()
                .await
                .map_err(|e| IntegrationError::Unreachable(error_chain(&e)))?;
            let status = response.status().as_u16();
            if response
                .content_length()
                .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
            {
                return Err(IntegrationError::BadResponse(format!(
                    "answer larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            let mut response = response;
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| IntegrationError::Unreachable(error_chain(&e)))?
            {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(IntegrationError::BadResponse(format!(
                        "answer larger than {MAX_ANSWER_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            proxy::from_http(status, &body)
                .map_err(|e| IntegrationError::BadResponse(e.to_string()))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(IntegrationError::Timeout(self.timeout)),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
