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
//! Layers, each importing only those below it (`scripts/check-layers.py` proves no file imports
//! one that imports it back):
//!
//! - [`dev_tables`] (top, beside `server`; `main.rs` uses it): `wsgate dev --dynamodb`, the
//!   project's DynamoDB tables created at a local endpoint.
//! - `server` (top; only this file and `main.rs` use it): binds the listeners, builds the first
//!   deployment, hands each layer its services, reloads, shuts down.
//! - [`admin`]: `/healthz`, `/readyz` and the web console's page (`/@console`), answered by the
//!   edge before anything else.
//! - [`edge`]: the listeners (plain and TLS on one port, handshake timeout); the handshake in
//!   named stages (checks, admission limits, the authorizer, `$connect`, register, 101); one
//!   session task per connection (reads, writes, timers, limits, close codes, `$disconnect`),
//!   on a socket whose client framing is followed so it can move to a new process.
//! - [`mgmt`]: the `@connections` API and its extensions, one file per operation, and its
//!   credentials (none, SigV4, bearer tokens), each limited to some operations.
//! - [`state`]: the [`state::Deployment`] a config builds (routes, authorizer, certificate,
//!   tokens), swapped whole on reload, and the narrow handles each layer gets: what a session
//!   needs, what a management call needs, what a listener needs.
//! - [`integration`]: what a route calls — `http` (POST the event), `function` (a local
//!   handler) or `mock` — and how its failures are told to the client.
//! - [`auth`]: the `$connect` authorizers (REQUEST over HTTP or a local function; JWT against a
//!   JWKS or a secret), SigV4 verification and bearer tokens for `mgmt`.
//! - [`function`]: the Lambda Runtime API and the pools of warm handler processes, with the
//!   built-in Python and Node bootstraps; each process's output and Lambda's `START`/`END`/`REPORT`
//!   lines about its invocations go to the log, in order, from one task per process.
//! - [`directory`]: where a management call finds its connections — on this node's hub, or
//!   over [`cluster`] on the node that holds them; [`ops`] is what it runs there, the same on
//!   every node.
//! - [`cluster`]: several nodes on Redis (`[cluster]`): the node table and heartbeats, requests
//!   between nodes, the registry of connections a survivor needs to reap a dead node.
//! - [`resume`]: resumable connections (`wsgate.reliable.v1`): the protocol's frames, the replay
//!   buffer of a session, and the desk where a resume finds its session.
//! - [`saved`]: resumable sessions kept across a restart in `gateway.state_dir` (redb).
//! - [`relaunch`] and [`handoff`]: upgrading the binary in place (`kill -USR2`): the rounds run
//!   by the old and the new process, and what sessions, listeners and the management API see of
//!   them (the phase, the verdict, the state a session carries, the Unix socket with
//!   `SCM_RIGHTS`).
//! - [`hub`]: this node's live connections, groups and users, and their byte-bounded outboxes.
//! - [`limits`]: open connections in all and per address, and rate buckets (new connections per
//!   address, management calls per credential).
//! - [`tls`]: certificates from files, and the development CA of `wsgate dev`.
//! - [`metrics`]: the counters of one gateway (an explicit Prometheus registry), with the
//!   per-route handles a deployment looks up once; `mgmt` serves them as `GET /metrics`.
//! - [`scratch`] (bottom): private folders under the temporary directory, for the development CA
//!   and the built-in bootstraps.
//!
//! Ids, events, route selection, proxy results, authorizer outputs, error shapes and the config
//! model live in the pure `wsgate-core` crate.

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod dev_tables;
pub mod directory;
pub mod edge;
pub mod function;
pub mod handoff;
pub mod hub;
pub mod integration;
pub mod limits;
pub mod metrics;
pub mod mgmt;
pub mod ops;
pub mod relaunch;
pub mod resume;
pub mod saved;
pub mod scratch;
mod server;
pub mod state;
pub mod tls;

pub use server::{Gateway, GatewayError, Options, RunningGateway};
pub use wsgate_core::config::Config;

/// The embedded default config: `$default` echoes every message back to its sender.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");
