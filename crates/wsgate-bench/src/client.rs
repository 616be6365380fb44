//! Opening WebSocket connections (spread over source addresses), learning their ids, and
//! calling the management API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::SystemTime;

use anyhow::{Context, anyhow};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// A client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// One server to connect to.
#[derive(Debug, Clone)]
struct Endpoint {
    /// `ws://host:port/path`.
    url: String,
    /// The server address, resolved once.
    addr: SocketAddr,
}

impl Endpoint {
    /// Parses `ws://127.0.0.1:PORT/path`.
    fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow!("only ws:// URLs: {url}"))?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let addr: SocketAddr = authority
            .parse()
            .with_context(|| format!("{authority} is not IP:PORT"))?;
        Ok(Self {
            url: url.to_owned(),
            addr,
        })
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// The servers; connection `n` goes to `endpoints[n % len]`.
    endpoints: Vec<Endpoint>,
    /// Source addresses to spread connections over (127.0.0.2, 127.0.0.3, …).
    pub sources: Vec<IpAddr>,
}

impl Target {
    /// Parses `ws://127.0.0.1:PORT/path`, or several such URLs separated by commas (the nodes of
    /// a cluster: connections go to them in turn); `sources` addresses start at 127.0.0.2.
    pub fn new(urls: &str, sources: usize) -> anyhow::Result<Self> {
        let endpoints = urls
            .split(',')
            .map(|url| Endpoint::parse(url.trim()))
            .collect::<anyhow::Result<_>>()?;
        let sources = (0..sources.max(1))
            .map(|i| {
                IpAddr::V4(Ipv4Addr::new(
                    127,
                    0,
                    (2 + i / 250) as u8,
                    (2 + i % 250) as u8,
                ))
            })
            .collect();
        Ok(Self { endpoints, sources })
    }

    /// Opens connection number `n` from its source address to its server.
    pub async fn connect(&self, n: usize) -> anyhow::Result<Ws> {
        self.connect_to(n, "", None).await
    }

    /// [`Target::connect`] with `query` added to the URL (`?a=b`, or empty) and a subprotocol
    /// offered.
    pub async fn connect_to(
        &self,
        n: usize,
        query: &str,
        protocol: Option<&str>,
    ) -> anyhow::Result<Ws> {
        let source = self.sources[n % self.sources.len()];
        let endpoint = &self.endpoints[n % self.endpoints.len()];
        let socket = TcpSocket::new_v4()?;
        // Bound before connecting, the kernel picks a port for the source address alone: without
        // SO_REUSEADDR every port in TIME_WAIT from an earlier scenario is taken, and after a full
        // repetition (tens of thousands closed) the search for a free one slows connects down to
        // about 1,000/s. The address and port pair to the server is still unique at connect.
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::new(source, 0))?;
        socket.set_nodelay(true)?;
        let stream = socket
            .connect(endpoint.addr)
            .await
            .with_context(|| format!("connect from {source} to {}", endpoint.addr))?;
        stream.set_nodelay(true)?;
        // A small read buffer: the client holds as many sockets as the server.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let mut request = format!("{}{query}", endpoint.url).into_client_request()?;
        if let Some(protocol) = protocol {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", protocol.parse()?);
        }
        let (ws, _) = client_async_with_config(request, stream, Some(config)).await?;
        Ok(ws)
    }
}

/// Asks the server who we are (`{"action":"whoami"}` → `{"connectionId": …}`).
pub async fn whoami(ws: &mut Ws) -> anyhow::Result<String> {
    ws.send(Message::text(r#"{"action":"whoami"}"#)).await?;
    while let Some(message) = ws.next().await {
        if let Message::Text(text) = message? {
            let value: serde_json::Value = serde_json::from_str(text.as_str())?;
            if let Some(id) = value["connectionId"].as_str() {
                return Ok(id.to_owned());
            }
        }
    }
    Err(anyhow!("closed before answering whoami"))
}

/// How management calls are signed.
#[derive(Debug, Clone)]
pub struct Signer {
    access_key_id: String,
    secret: String,
}

impl Signer {
    /// Parses `AKID:SECRET`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (akid, secret) = text
            .split_once(':')
            .ok_or_else(|| anyhow!("--sigv4 wants AKID:SECRET"))?;
        Ok(Self {
            access_key_id: akid.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Signs a request as an AWS SDK does (host and x-amz-date, service execute-api).
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
    ) -> anyhow::Result<Vec<(String, String)>> {
        let parsed = reqwest::Url::parse(url)?;
        let host = match parsed.port() {
            Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
            None => parsed.host_str().unwrap_or_default().to_owned(),
        };
        let identity: Identity =
            Credentials::new(&self.access_key_id, &self.secret, None, None, "bench").into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("execute-api")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers = [("host", host.as_str())];
        let request =
            SignableRequest::new(method, url, headers.into_iter(), SignableBody::Bytes(body))?;
        let (instructions, _) = sign(request, &params)?.into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

/// The URL of `@connections/{id}` under a management base URL.
pub fn connection_url(mgmt: &str, id: &str) -> String {
    format!(
        "{}/@connections/{}",
        mgmt.trim_end_matches('/'),
        id.replace('=', "%3D")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_one_endpoint() {
        let target = Target::new("ws://127.0.0.1:8080/dev", 4).expect("a URL");
        assert_eq!(target.endpoints.len(), 1);
        assert_eq!(target.endpoints[0].url, "ws://127.0.0.1:8080/dev");
        assert_eq!(target.sources.len(), 4);
    }

    #[test]
    fn several_urls_are_taken_in_turn() {
        let target =
            Target::new("ws://127.0.0.1:1/dev, ws://127.0.0.1:2/dev", 1).expect("two URLs");
        let ports: Vec<u16> = target.endpoints.iter().map(|e| e.addr.port()).collect();
        assert_eq!(ports, [1, 2]);
        assert_eq!(target.endpoints[1].url, "ws://127.0.0.1:2/dev");
        assert!(Target::new("ws://127.0.0.1:1/dev,http://127.0.0.1:2/", 1).is_err());
    }
}
