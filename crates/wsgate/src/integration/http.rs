//! The `http` integration: POST the exact Lambda-proxy event as JSON to a URL and read the answer
//! as a proxy result (or, failing that, as status + raw body).

use std::time::Duration;

use wsgate_core::proxy::{self, ProxyResult};

use super::error::IntegrationError;

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
                .map_err(|e| failed_call(&e))?;
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
                .map_err(|e| IntegrationError::Broken(error_chain(&e)))?
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

/// A request that got no answer: the backend could not be reached at all, or the connection
/// broke after it was made.
fn failed_call(error: &reqwest::Error) -> IntegrationError {
    if error.is_connect() {
        IntegrationError::Connect(error_chain(error))
    } else {
        IntegrationError::Broken(error_chain(error))
    }
}

/// An error and its causes: reqwest's own message is only "error sending request".
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(addr: std::net::SocketAddr) -> HttpIntegration {
        HttpIntegration::new(
            &format!("http://{addr}/"),
            Duration::from_secs(5),
            reqwest::Client::new(),
        )
        .expect("a valid URL")
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let error = integration(addr)
            .call(b"{}".to_vec())
            .await
            .expect_err("nobody listens");
        assert_eq!(error.kind(), "refused", "{error}");
    }

    /// A backend that reads one request, writes `answer` (maybe nothing) and hangs up.
    async fn one_shot_backend(answer: &'static [u8]) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
                let _ = tokio::io::AsyncWriteExt::write_all(&mut socket, answer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_backend_that_hangs_up_without_answering_is_a_broken_connection() {
        let addr = one_shot_backend(b"").await;
        let error = integration(addr)
            .call(b"{}".to_vec())
            .await
            .expect_err("no answer");
        assert_eq!(error.kind(), "broken", "{error}");
    }

    #[tokio::test]
    async fn an_answer_that_is_not_a_proxy_result_is_a_bad_response() {
        let addr = one_shot_backend(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 18\r\n\r\n{\"statusCode\":\"x\"}",
        )
        .await;
        let error = integration(addr)
            .call(b"{}".to_vec())
            .await
            .expect_err("a string status");
        assert_eq!(error.kind(), "bad_answer", "{error}");
    }
}
