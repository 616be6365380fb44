//! `wsgate dev --dynamodb URL`: the DynamoDB tables a project declares, created at a local
//! DynamoDB (DynamoDB Local, moto, LocalStack) when they are missing there, so that the handlers,
//! told that endpoint, find them on the first `$connect`.
//!
//! A table that exists is left as it is: never updated, never deleted, whatever its schema.
//! Every outcome is one log line naming the table and the endpoint; a refusal or an endpoint
//! that cannot be reached is an error line with the service's message, and `wsgate dev` goes on
//! without the table.
//!
//! The calls are DynamoDB's JSON protocol (`POST /` with `X-Amz-Target`), signed with SigV4 by
//! `aws-sigv4` with the environment's credentials, else the placeholder ones the handlers get
//! too: DynamoDB Local keeps one database per access key and region, so the tables must be
//! created under the handlers' own.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use serde_json::{Value, json};
use tokio::time::Instant;
use wsgate_core::import::TableSpec;

use crate::function::PLACEHOLDER_CREDENTIAL;
use crate::integration::error_chain;

/// The variable that AWS SDK for JavaScript v3, boto3 and the AWS CLI read for DynamoDB's
/// endpoint; also what `--dynamodb` defaults to.
pub const ENV_ENDPOINT: &str = "AWS_ENDPOINT_URL_DYNAMODB";

/// How long a created table may take to become `ACTIVE` before serving starts (local ones are
/// at once; a LocalStack under load takes a few seconds).
const ACTIVE_WITHIN: Duration = Duration::from_secs(30);
/// Between two `DescribeTable`s while waiting.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// One call, connection included: a local endpoint answers in milliseconds.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a table was not created.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// Nothing answered at the endpoint, or not in time.
    #[error("cannot reach the endpoint: {0}")]
    Unreachable(String),
    /// The service answered a call with an error.
    #[error("{operation} refused: {kind}: {message} (HTTP {status})")]
    Refused {
        /// `CreateTable`, `DescribeTable`, `UpdateTimeToLive`.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The error type, without its namespace (`ValidationException`).
        kind: String,
        /// The service's message.
        message: String,
    },
    /// The service answered something that is not DynamoDB's JSON.
    #[error("{operation}: the answer is not DynamoDB JSON (HTTP {status})")]
    NotDynamoDb {
        /// The call.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The table was created but did not become `ACTIVE` in time.
    #[error("created, but not ACTIVE within {}s (status {status})", ACTIVE_WITHIN.as_secs())]
    NotActive {
        /// Its last status.
        status: String,
    },
    /// The request could not be signed (a credential with characters a header cannot hold).
    #[error("cannot sign the request: {0}")]
    Sign(String),
}

/// Why the endpoint cannot be used at all.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The URL does not parse, or is not `http(s)://host[:port][/path]`.
    #[error("--dynamodb {url}: not an http(s) URL ({reason})")]
    Url {
        /// As given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client cannot be built.
    #[error("cannot build the DynamoDB client: {0}")]
    Client(String),
}

/// What happened to a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was missing and is now `ACTIVE`.
    Created,
    /// It was there already, and is left as it is.
    AlreadyThere,
}

/// A local DynamoDB and the tables already seen there.
#[derive(Debug)]
pub struct LocalTables {
    endpoint: reqwest::Url,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    client: reqwest::Client,
    /// Found or created: a template reload only looks at the other tables.
    done: BTreeSet<String>,
}

impl LocalTables {
    /// The DynamoDB at `endpoint`, called in `region` with the credentials `env` names (else
    /// the handlers' placeholders).
    pub fn new(
        endpoint: &str,
        region: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, EndpointError> {
        let bad = |reason: &str| EndpointError::Url {
            url: endpoint.to_owned(),
            reason: reason.to_owned(),
        };
        let url = reqwest::Url::parse(endpoint).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("expected http://host:port"));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| EndpointError::Client(e.to_string()))?;
        let credential = |key: &str| env(key).unwrap_or_else(|| PLACEHOLDER_CREDENTIAL.to_owned());
        Ok(Self {
            endpoint: url,
            region: region.to_owned(),
            access_key_id: credential("AWS_ACCESS_KEY_ID"),
            secret_access_key: credential("AWS_SECRET_ACCESS_KEY"),
            session_token: env("AWS_SESSION_TOKEN"),
            client,
            done: BTreeSet::new(),
        })
    }

    /// What every handler process gets: the endpoint (as given, which SDKs take as a base URL).
    pub fn handler_env(&self) -> Vec<(String, String)> {
        vec![(ENV_ENDPOINT.to_owned(), self.endpoint_text())]
    }

    fn endpoint_text(&self) -> String {
        self.endpoint.as_str().trim_end_matches('/').to_owned()
    }

    /// Creates each of `tables` not seen before that is missing at the endpoint, waiting until
    /// it is `ACTIVE`; logs one line per table. Once the endpoint cannot be reached, the tables
    /// left are reported with that error without calling again (each call would wait for its
    /// own timeout).
    pub async fn ensure(&mut self, tables: &[TableSpec]) {
        let endpoint = self.endpoint_text();
        let mut unreachable: Option<String> = None;
        for table in tables {
            if self.done.contains(&table.name) {
                continue;
            }
            let result = match &unreachable {
                Some(reason) => Err(TableError::Unreachable(reason.clone())),
                None => self.ensure_one(table).await,
            };
            match result {
                Ok(Outcome::Created) => {
                    tracing::info!(table = %table.name, logical_id = %table.logical_id, %endpoint, "DynamoDB table created");
                    self.done.insert(table.name.clone());
                }
                Ok(Outcome::AlreadyThere) => {
                    tracing::info!(table = %table.name, logical_id = %table.logical_id, %endpoint, "DynamoDB table already there; left as it is");
                    self.done.insert(table.name.clone());
                }
                Err(error) => {
                    if let TableError::Unreachable(reason) = &error {
                        unreachable = Some(reason.clone());
                    }
                    tracing::error!(table = %table.name, logical_id = %table.logical_id, %endpoint, %error, "DynamoDB table not created; wsgate dev goes on without it");
                }
            }
        }
    }

    /// One table: described, created if missing, waited for, its TTL set.
    pub async fn ensure_one(&self, table: &TableSpec) -> Result<Outcome, TableError> {
        let describe = json!({ "TableName": table.name });
        match self.call("DescribeTable", &describe).await {
            Ok(_) => return Ok(Outcome::AlreadyThere),
            Err(TableError::Refused { kind, .. }) if kind == "ResourceNotFoundException" => {}
            Err(error) => return Err(error),
        }
        match self.call("CreateTable", &table.create_table).await {
            Ok(_) => {}
            // Created by someone else since it was described.
            Err(TableError::Refused { kind, .. }) if kind == "ResourceInUseException" => {
                return Ok(Outcome::AlreadyThere);
            }
            Err(error) => return Err(error),
        }
        self.wait_active(&describe).await?;
        if let Some(attribute) = &table.ttl_attribute {
            let ttl = json!({
                "TableName": table.name,
                "TimeToLiveSpecification": { "AttributeName": attribute, "Enabled": true },
            });
            self.call("UpdateTimeToLive", &ttl).await?;
        }
        Ok(Outcome::Created)
    }

    async fn wait_active(&self, describe: &Value) -> Result<(), TableError> {
        let deadline = Instant::now() + ACTIVE_WITHIN;
        loop {
            let answer = self.call("DescribeTable", describe).await?;
            let status = answer
                .pointer("/Table/TableStatus")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            if status == "ACTIVE" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TableError::NotActive {
                    status: status.to_owned(),
                });
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// One signed call of DynamoDB's JSON protocol.
    async fn call(&self, operation: &'static str, body: &Value) -> Result<Value, TableError> {
        let body = serde_json::to_vec(body).expect("a JSON value serializes");
        let target = format!("DynamoDB_20120810.{operation}");
        let headers = self.signed_headers(&target, &body)?;
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", &target)
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| TableError::Unreachable(error_chain(&e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TableError::Unreachable(error_chain(&e)))?;
        let answer: Value =
            serde_json::from_slice(&bytes).map_err(|_| TableError::NotDynamoDb {
                operation,
                status: status.as_u16(),
            })?;
        if status.is_success() {
            return Ok(answer);
        }
        let text = |key: &str| answer.get(key).and_then(Value::as_str);
        // `com.amazonaws.dynamodb.v20120810#ResourceNotFoundException`.
        let kind = text("__type").unwrap_or("unknown error");
        let kind = kind.rsplit_once('#').map_or(kind, |(_, k)| k).to_owned();
        Err(TableError::Refused {
            operation,
            status: status.as_u16(),
            kind,
            message: text("message")
                .or_else(|| text("Message"))
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, and the session token if any) for a
    /// `POST` of `body` with these headers.
    fn signed_headers(
        &self,
        target: &str,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, TableError> {
        let sign_error = |e: &dyn std::fmt::Display| TableError::Sign(e.to_string());
        let host = match self.endpoint.port() {
            Some(port) => format!("{}:{port}", self.endpoint.host_str().unwrap_or_default()),
            None => self.endpoint.host_str().unwrap_or_default().to_owned(),
        };
        let identity: Identity = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "wsgate-dev",
        )
        .into();
        let params = SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("dynamodb")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| sign_error(&e))?
            .into();
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", target),
        ];
        let request = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| sign_error(&e))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| sign_error(&e))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};

    use super::*;

    /// What the stub saw: each call's operation and `authorization` header.
    type Seen = Arc<Mutex<Vec<(String, String)>>>;
    /// How the stub answers an operation and its body.
    type Script = fn(&str, &Value) -> (StatusCode, Value);

    /// A DynamoDB that answers as `script` says, and records the calls.
    async fn stub(script: Script) -> (String, Seen) {
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let operation = header("x-amz-target")
                    .trim_start_matches("DynamoDB_20120810.")
                    .to_owned();
                record
                    .lock()
                    .expect("not poisoned")
                    .push((operation.clone(), header("authorization")));
                let body: Value = serde_json::from_slice(&body).expect("JSON");
                let (status, answer) = script(&operation, &body);
                (status, answer.to_string())
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), seen)
    }

    fn not_found() -> (StatusCode, Value) {
        (
            StatusCode::BAD_REQUEST,
            json!({"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "message": "Requested resource not found"}),
        )
    }

    fn table() -> TableSpec {
        TableSpec {
            logical_id: "ConnectionsTable".into(),
            name: "connections".into(),
            create_table: json!({"TableName": "connections"}),
            ttl_attribute: Some("expiresAt".into()),
        }
    }

    fn local(endpoint: &str) -> LocalTables {
        LocalTables::new(endpoint, "eu-west-1", |_| None).expect("a valid endpoint")
    }

    fn operations(seen: &Seen) -> Vec<String> {
        let seen = seen.lock().expect("not poisoned");
        seen.iter()
            .map(|(operation, _)| operation.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_missing_table_is_created_waited_for_and_given_its_ttl() {
        let (endpoint, seen) = stub(|operation, _| match operation {
            "DescribeTable" => {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static CALLS: AtomicUsize = AtomicUsize::new(0);
                match CALLS.fetch_add(1, Ordering::SeqCst) {
                    0 => not_found(),
                    1 => (
                        StatusCode::OK,
                        json!({"Table": {"TableStatus": "CREATING"}}),
                    ),
                    _ => (StatusCode::OK, json!({"Table": {"TableStatus": "ACTIVE"}})),
                }
            }
            _ => (StatusCode::OK, json!({})),
        })
        .await;
        let outcome = local(&endpoint).ensure_one(&table()).await;
        assert_eq!(outcome.expect("created"), Outcome::Created);
        assert_eq!(
            operations(&seen),
            [
                "DescribeTable",
                "CreateTable",
                "DescribeTable",
                "DescribeTable",
                "UpdateTimeToLive"
            ]
        );
        // Signed for DynamoDB in the handlers' region, with their placeholder key.
        let authorization = seen.lock().expect("not poisoned")[1].1.clone();
        assert!(
            authorization.starts_with(&format!(
                "AWS4-HMAC-SHA256 Credential={PLACEHOLDER_CREDENTIAL}/"
            )) && authorization.contains("/eu-west-1/dynamodb/aws4_request"),
            "{authorization}"
        );
        assert!(authorization.contains("x-amz-target"), "{authorization}");
    }

    #[tokio::test]
    async fn an_existing_table_is_left_alone() {
        let (endpoint, seen) =
            stub(|_, _| (StatusCode::OK, json!({"Table": {"TableStatus": "ACTIVE"}}))).await;
        let outcome = local(&endpoint).ensure_one(&table()).await;
        assert_eq!(outcome.expect("there"), Outcome::AlreadyThere);
        assert_eq!(operations(&seen), ["DescribeTable"]);
    }

    #[tokio::test]
    async fn a_refused_create_names_the_service_message() {
        let (endpoint, _) = stub(|operation, _| match operation {
            "DescribeTable" => not_found(),
            _ => (
                StatusCode::BAD_REQUEST,
                json!({"__type": "com.amazon.coral.validate#ValidationException", "Message": "One or more parameter values were invalid"}),
            ),
        })
        .await;
        let error = local(&endpoint)
            .ensure_one(&table())
            .await
            .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "CreateTable refused: ValidationException: One or more parameter values were invalid (HTTP 400)"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_every_table_is_reported() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let mut local = local(&format!("http://{addr}"));
        let error = local
            .ensure_one(&table())
            .await
            .expect_err("nobody listens");
        assert!(matches!(error, TableError::Unreachable(_)), "{error:?}");
        // Reported, not remembered: a later reload tries again.
        local.ensure(&[table()]).await;
        assert!(local.done.is_empty());
    }

    #[test]
    fn an_endpoint_must_be_an_http_url() {
        for bad in ["127.0.0.1:8000", "ftp://x", "http://"] {
            let error = LocalTables::new(bad, "us-east-1", |_| None).expect_err(bad);
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("--dynamodb {bad}: not an http(s) URL")),
                "{error}"
            );
        }
        let local = local("http://127.0.0.1:8000/");
        assert_eq!(
            local.handler_env(),
            [(ENV_ENDPOINT.to_owned(), "http://127.0.0.1:8000".to_owned())]
        );
    }
}
