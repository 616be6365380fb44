//! wsgate: a self-hosted WebSocket API gateway that speaks the contract of Amazon API Gateway
//! WebSocket APIs.
//!
//! # Layout
//! The path of one message:
//!
//! ```text
//! client ─ws─▶ edge (upgrade, session) ─▶ route selection ─▶ integration ─▶ backend
//!                ▲                                                 │
//!                └── outbox (bounded) ◀── hub ◀── mgmt (@connections) ◀── backend
//! ```
//!
//! - [`edge`]: the listeners (plain and TLS on one port, handshake timeout); the handshake
//!   (origin, connection limits, the authorizer, `$connect`); one session task per connection
//!   (reads, writes, timers, limits, close codes, `$disconnect`).
//! - [`integration`]: what a route calls — `http` (POST the event), `function` (a local
//!   handler) or `mock`.
//! - [`function`]: the Lambda Runtime API and the pools of warm handler processes, with the
//!   built-in Python and Node bootstraps.
//! - [`hub`]: this node's live connections and their byte-bounded outboxes.
//! - [`mgmt`]: the `@connections` API, one file per operation; its credentials (none, SigV4,
//!   bearer tokens), each limited to some operations.
//! - [`auth`]: the `$connect` authorizers (REQUEST over HTTP or a local function; JWT against a
//!   JWKS or a secret) and SigV4 verification for `mgmt`.
//! - [`limits`]: open connections in all and per address, and rate buckets (new connections per
//!   address, management calls per credential).
//! - [`gateway`]: shared state, the swappable route table, start-up and graceful shutdown.
//!
//! Ids, events, route selection, proxy results, authorizer outputs, error shapes and the config
//! model live in the pure `wsgate-core` crate.

pub mod auth;
pub mod edge;
pub mod function;
pub mod gateway;
pub mod hub;
pub mod integration;
pub mod limits;
pub mod mgmt;

pub use gateway::{Gateway, GatewayError, Options, RunningGateway};
pub use wsgate_core::config::Config;

/// The embedded default config: `$default` echoes every message back to its sender.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");
