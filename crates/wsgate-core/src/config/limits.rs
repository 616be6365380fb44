//! `[limits]`: sizes, timeouts and bounds, API Gateway's quotas by default.

use std::time::Duration;

use serde::Deserialize;

use super::error::{ConfigError, err};
use super::management::Management;
use super::values::{MAX_DURATION, de_duration};

/// `[limits]`. Defaults are API Gateway's quotas.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Close with 1001 after this long without a data message either way. Default 10 minutes.
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Close with 1001 after this long, whatever happens. Default 2 hours.
    #[serde(deserialize_with = "de_duration")]
    pub max_connection_duration: Duration,
    /// How long an integration may take. Default 29 s.
    #[serde(deserialize_with = "de_duration")]
    pub integration_timeout: Duration,
    /// Largest inbound frame in bytes; larger closes with 1009. Outbound messages over it are
    /// sent in fragments of this size. Default 32768.
    pub max_frame_bytes: usize,
    /// Largest inbound message in bytes after reassembly; larger closes with 1009. Default 131072.
    pub max_message_bytes: usize,
    /// Bytes queued to one client before `@connections` POSTs get 429. Default 4 MiB.
    pub outbox_bytes: usize,
    /// Integration calls one connection may have in flight; past it the gateway stops reading
    /// from that client until one finishes. Default 32.
    pub max_inflight_per_connection: usize,
    /// The most read from a socket at once, in bytes. Sockets are read into a buffer shared by
    /// the connections of a worker thread, so an idle connection holds no read buffer; only bytes
    /// read ahead of a message stay with their connection until it takes them. Default 4096.
    pub read_buffer_bytes: usize,
    /// Whether client Ping frames reset the idle timer. API Gateway's behaviour is unknown; off by
    /// default (only data messages count).
    pub control_frames_reset_idle: bool,
    /// What a send to many does with a recipient whose outbox is full: `skip` it and count it
    /// (the default), or `close` it with 1008. A single-target POST answers 429 either way.
    pub fanout_overflow: FanoutOverflow,
    /// On SIGTERM/SIGINT, how long to wait for clients to close and `$disconnect`s to run.
    /// Default 10 s.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// On SIGTERM/SIGINT, how long `/readyz` answers 503 while the gateway still serves
    /// everything, before it stops accepting: time for a load balancer's health check to take
    /// the node out (its interval times its failure threshold). Default 0 s.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_delay: Duration,
    /// Open connections at most; upgrades past it get 503. 0 = unlimited. Default 100000.
    pub max_connections: usize,
    /// Open connections from one IP address at most; upgrades past it get 429. 0 = unlimited.
    /// Default 1000.
    pub max_connections_per_ip: usize,
    /// Upgrade requests one IP address may make per second (a burst of as many is allowed);
    /// past it they get 429. 0 = unlimited. Default 100.
    pub new_connections_per_ip_per_second: u32,
    /// How long a new TCP connection may take to finish its TLS handshake and send a whole
    /// request head; slower ones are dropped (slowloris). Default 10 s.
    #[serde(deserialize_with = "de_duration")]
    pub handshake_timeout: Duration,
    /// Management calls one credential (or, without auth, one IP address) may make per second;
    /// past it they get 429 `LimitExceededException`. 0 = unlimited, the default.
    pub management_requests_per_second: u32,
    /// Whether clients on a loopback address (127.0.0.0/8, ::1) are exempt from the per-address
    /// limits (`max_connections_per_ip`, `new_connections_per_ip_per_second`). Behind a proxy on
    /// the same host without `gateway.trusted_proxies`, every client has the proxy's loopback
    /// address, and one shared budget would refuse real users. `max_connections` still applies.
    /// Default true.
    pub exempt_loopback: bool,
    /// Accepted TCP connections that have not yet become WebSocket sessions (TLS handshake,
    /// request head, `$connect`) or are management requests, per listener, at most; past it the
    /// listener stops accepting until one finishes. Read at start. Default 4096.
    pub max_pending_connections: usize,
    /// Groups one connection may be in; a join past it gets 400 `BadRequestException` (and a
    /// `"wsgate": {"join": [...]}` directive past it is ignored with a warning). Default 100.
    pub max_groups_per_connection: usize,
    /// How long a connection that chose the `wsgate.reliable.v1` subprotocol stays resumable
    /// after its socket drops: POSTs to it are kept meanwhile, and `$disconnect` waits until the
    /// window passes. `"0s"` turns resuming off. Default 2 minutes.
    #[serde(deserialize_with = "de_duration")]
    pub resume_window: Duration,
    /// Bytes of messages a resumable connection keeps for a resume (sent but not acknowledged,
    /// and those posted while its socket is down); a suspended session past it ends. Default 1 MiB.
    pub resume_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            max_connection_duration: Duration::from_secs(7200),
            integration_timeout: Duration::from_secs(29),
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            outbox_bytes: 4 * 1024 * 1024,
            max_inflight_per_connection: 32,
            read_buffer_bytes: 4096,
            control_frames_reset_idle: false,
            fanout_overflow: FanoutOverflow::Skip,
            shutdown_grace: Duration::from_secs(10),
            shutdown_delay: Duration::ZERO,
            max_connections: 100_000,
            max_connections_per_ip: 1000,
            new_connections_per_ip_per_second: 100,
            handshake_timeout: Duration::from_secs(10),
            management_requests_per_second: 0,
            exempt_loopback: true,
            max_pending_connections: 4096,
            max_groups_per_connection: 100,
            resume_window: Duration::from_secs(120),
            resume_buffer_bytes: 1024 * 1024,
        }
    }
}

/// `limits.fanout_overflow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FanoutOverflow {
    /// Leave the slow reader out of this send and count it in `skipped`.
    #[default]
    Skip,
    /// Close the slow reader with 1008.
    Close,
}

impl Limits {
    /// Checks `[limits]`; the error names the first bad key. `management` is there for the keys
    /// checked against `[limits]`: `management.max_clock_skew` is bounded like the limits'
    /// durations, and `limits.outbox_bytes` must hold `management.max_payload_bytes`.
    pub(super) fn validate(&self, management: &Management) -> Result<(), ConfigError> {
        for (key, value) in [
            ("limits.idle_timeout", self.idle_timeout),
            (
                "limits.max_connection_duration",
                self.max_connection_duration,
            ),
            ("limits.shutdown_grace", self.shutdown_grace),
            ("limits.handshake_timeout", self.handshake_timeout),
        ] {
            if value.is_zero() {
                return Err(err(key, "must be greater than zero"));
            }
        }
        // Timers add these to the clock: a year is plenty, and keeps the sum far from overflowing.
        for (key, value) in [
            ("limits.idle_timeout", self.idle_timeout),
            (
                "limits.max_connection_duration",
                self.max_connection_duration,
            ),
            ("limits.integration_timeout", self.integration_timeout),
            ("limits.shutdown_grace", self.shutdown_grace),
            ("limits.shutdown_delay", self.shutdown_delay),
            ("management.max_clock_skew", management.max_clock_skew),
            ("limits.handshake_timeout", self.handshake_timeout),
            ("limits.resume_window", self.resume_window),
        ] {
            if value > MAX_DURATION {
                return Err(err(key, "must be at most a year"));
            }
        }
        if self.integration_timeout < Duration::from_millis(50) {
            return Err(err(
                "limits.integration_timeout",
                "must be at least 50ms (API Gateway's minimum)",
            ));
        }
        self.validate_sizes(management.max_payload_bytes)
    }

    /// The byte counts of `[limits]`; `max_payload_bytes` is `management.max_payload_bytes`.
    fn validate_sizes(&self, max_payload_bytes: usize) -> Result<(), ConfigError> {
        for (key, value) in [
            ("limits.max_frame_bytes", self.max_frame_bytes),
            ("limits.max_message_bytes", self.max_message_bytes),
            (
                "limits.max_inflight_per_connection",
                self.max_inflight_per_connection,
            ),
            (
                "limits.max_pending_connections",
                self.max_pending_connections,
            ),
        ] {
            if value == 0 {
                return Err(err(key, "must be greater than zero"));
            }
        }
        if !(256..=1 << 20).contains(&self.read_buffer_bytes) {
            return Err(err(
                "limits.read_buffer_bytes",
                "must be between 256 and 1048576",
            ));
        }
        if self.resume_buffer_bytes < max_payload_bytes {
            return Err(err(
                "limits.resume_buffer_bytes",
                format!("must be at least management.max_payload_bytes ({max_payload_bytes})"),
            ));
        }
        if self.outbox_bytes < max_payload_bytes {
            return Err(err(
                "limits.outbox_bytes",
                format!("must be at least management.max_payload_bytes ({max_payload_bytes})"),
            ));
        }
        Ok(())
    }
}
