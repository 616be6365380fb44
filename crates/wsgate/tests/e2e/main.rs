//! End-to-end tests: the real gateway on 127.0.0.1:0, a stub backend on 127.0.0.1:0, real
//! WebSocket and HTTP clients. One test per behaviour of the contract.

mod common;

mod abuse;
mod authorizers;
mod connect;
mod defaults;
mod fanout;
mod functions;
mod lifecycle;
mod limits;
mod management;
mod management_security;
mod messages;
mod security;
