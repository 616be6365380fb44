//! One HTTP/1.1 connection: the WebSocket upgrade, and the three management calls the bench
//! makes (`@connections/{id}`, `@broadcast`, `@openapi.json`), under any path prefix.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Parts;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::hub::{ConnectionId, Hub, Refused, data_frame};
use crate::session;

/// Largest POST body: API Gateway's limit for `@connections`.
const MAX_BODY_BYTES: usize = 128 * 1024;

/// What the bench's broadcast scenario looks for (`@broadcast` in the text) before it uses the
/// fan-out call instead of one POST per receiver.
const OPENAPI: &str = r#"{"openapi":"3.1.0","info":{"title":"wsgate-baseline","version":"0"},"paths":{"/@connections/{connectionId}":{"post":{}},"/@broadcast":{"post":{}}}}"#;

/// Serves one accepted connection until it closes or becomes a WebSocket.
pub async fn serve(stream: TcpStream, hub: Arc<Hub>) {
    let service = service_fn(move |request| {
        let hub = hub.clone();
        async move { Ok::<_, Infallible>(route(request, hub).await) }
    });
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

/// The call a request's path names, whatever comes before it.
#[derive(Debug, PartialEq, Eq)]
enum Call<'a> {
    PostToConnection(&'a str),
    Broadcast,
    OpenApi,
}

impl<'a> Call<'a> {
    fn parse(method: &Method, path: &'a str) -> Option<Self> {
        if *method == Method::GET && path.ends_with("/@openapi.json") {
            return Some(Self::OpenApi);
        }
        if *method != Method::POST {
            return None;
        }
        if path.ends_with("/@broadcast") {
            return Some(Self::Broadcast);
        }
        let (_, id) = path.rsplit_once("/@connections/")?;
        Some(Self::PostToConnection(id))
    }
}

async fn route(request: Request<Incoming>, hub: Arc<Hub>) -> Response<String> {
    if let Some(key) = websocket_key(&request) {
        return upgrade(request, key, hub);
    }
    let (parts, body) = request.into_parts();
    let Some(call) = Call::parse(&parts.method, parts.uri.path()) else {
        return answer(StatusCode::NOT_FOUND, "");
    };
    match call {
        Call::OpenApi => answer(StatusCode::OK, OPENAPI),
        Call::PostToConnection(id) => post_to_connection(&hub, id, body).await,
        Call::Broadcast => broadcast(&hub, body).await,
    }
}

/// The body as one frame to connection `id`: 200, 410 when it is not open, 429 when it does not
/// read.
async fn post_to_connection(hub: &Hub, id: &str, body: Incoming) -> Response<String> {
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(status) => return answer(status, ""),
    };
    let sent = ConnectionId::parse(id)
        .map_or(Err(Refused::Gone), |id| hub.send_to(id, &data_frame(&body)));
    match sent {
        Ok(()) => answer(StatusCode::OK, ""),
        Err(Refused::Gone) => answer(StatusCode::GONE, ""),
        Err(Refused::Full) => answer(StatusCode::TOO_MANY_REQUESTS, ""),
    }
}

/// The body as one frame, encoded once, to every open connection; answered as wsgate does.
async fn broadcast(hub: &Hub, body: Incoming) -> Response<String> {
    match read_body(body).await {
        Ok(body) => {
            let recipients = hub.broadcast(&data_frame(&body));
            answer(StatusCode::OK, format!(r#"{{"recipients":{recipients}}}"#))
        }
        Err(status) => answer(status, ""),
    }
}

/// The `Sec-WebSocket-Key` of a WebSocket upgrade request; `None` for any other request.
fn websocket_key(request: &Request<Incoming>) -> Option<HeaderValue> {
    let upgrade = request.headers().get(header::UPGRADE)?.to_str().ok()?;
    if request.method() != Method::GET || !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    request.headers().get(header::SEC_WEBSOCKET_KEY).cloned()
}

/// Answers 101 and hands the socket, once hyper lets it go, to the connection's task.
fn upgrade(mut request: Request<Incoming>, key: HeaderValue, hub: Arc<Hub>) -> Response<String> {
    let Ok(accept) = HeaderValue::try_from(derive_accept_key(key.as_bytes())) else {
        return answer(StatusCode::BAD_REQUEST, "");
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // The plain TCP stream back from hyper, so that POSTs and broadcasts can write to it
        // without going through the connection's task.
        let Ok(parts) = upgraded.downcast::<TokioIo<TcpStream>>() else {
            return;
        };
        // Copied, and the original dropped: the leftover (nearly always empty) is a view of
        // hyper's 8 KiB read buffer. Kept, or turned into a Vec (which reuses the allocation),
        // it would become the connection's read buffer: 6.5 KiB of RSS per idle connection
        // instead of the 256 bytes configured.
        let Parts { io, read_buf, .. } = parts;
        let read = read_buf.to_vec();
        drop(read_buf);
        session::run(io.into_inner(), read, hub).await;
    });
    let mut response = answer(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The whole body, up to `MAX_BODY_BYTES`.
async fn read_body(mut body: Incoming) -> Result<Vec<u8>, StatusCode> {
    let mut read = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| StatusCode::BAD_REQUEST)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if read.len() + data.len() > MAX_BODY_BYTES {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        read.extend_from_slice(&data);
    }
    Ok(read)
}

fn answer(status: StatusCode, body: impl Into<String>) -> Response<String> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_found_under_any_prefix() {
        let post = Method::POST;
        assert_eq!(
            Call::parse(&post, "/dev/@connections/000000000000002a"),
            Some(Call::PostToConnection("000000000000002a"))
        );
        assert_eq!(
            Call::parse(&post, "/@connections/x"),
            Some(Call::PostToConnection("x"))
        );
        assert_eq!(Call::parse(&post, "/@broadcast"), Some(Call::Broadcast));
        assert_eq!(
            Call::parse(&Method::GET, "/dev/@openapi.json"),
            Some(Call::OpenApi)
        );
        assert_eq!(Call::parse(&Method::GET, "/@broadcast"), None);
        assert_eq!(Call::parse(&post, "/elsewhere"), None);
    }
}
