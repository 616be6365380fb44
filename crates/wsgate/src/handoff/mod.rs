//! Handing live connections to a new process (`kill -USR2`): what sessions, listeners and the
//! management API see of it. The old and the new process talk over a Unix socket
//! ([`channel`]); each session that moves is written down as [`wire::Carried`] with its socket
//! attached.
//!
//! A round goes: the new process says hello and gets the listeners' addresses; once it has
//! built its routes it says ready; the old one stops accepting ([`Phase::Handing`]: the kernel
//! queues new connections meanwhile), holds management calls, and asks every session to move.
//! Each one stops reading between two frames, writes what it had queued, and sends its state
//! and socket, then waits for the [`Verdict`]. The listeners go last. When the new process has
//! taken everything it says so ([`Verdict::Taken`]): the old sessions let go of their sockets
//! (without closing them) and pass on what still arrives for them — the answers of integration
//! calls under way — and the old process exits. If the new process fails before that
//! ([`Verdict::Failed`]), every session goes on in the old process as if nothing happened.

pub(crate) mod channel;
pub(crate) mod wire;

use std::os::fd::OwnedFd;
use std::sync::Mutex;

use tokio::sync::{mpsc, watch};
use wsgate_core::id::ConnectionId;

use crate::hub::Command;

/// Where the process is in handing its connections over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Serving as usual.
    Serving,
    /// Handing over: accept nothing, hold management calls.
    Handing,
    /// Handed over: everything is served by the new process now.
    Moved,
}

/// How a round ended, for the sessions that moved out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet.
    Waiting,
    /// The new process has every connection: let go of the sockets.
    Taken,
    /// The new process failed: go on serving.
    Failed,
}

/// A session on its way out.
#[derive(Debug)]
pub struct Moving {
    /// Its state, encoded.
    pub carried: wire::Encoded,
    /// Its socket (a duplicate; the session keeps its own until the verdict), when it has one.
    pub socket: Option<OwnedFd>,
}

/// What a session that moved out passes on: messages for its connection in the new process.
pub type Relay = mpsc::UnboundedSender<(ConnectionId, Command)>;

/// The handles a session gets when it moves out.
#[derive(Debug)]
pub struct Departure {
    /// The verdict, once there is one.
    pub verdict: watch::Receiver<Verdict>,
    /// Where to pass on what arrives for it after the verdict.
    pub relay: Relay,
}

/// A round under way, as the old process runs it.
#[derive(Debug)]
pub struct Round {
    /// Sessions moving out.
    pub sessions: mpsc::UnboundedSender<Moving>,
    /// The verdict.
    pub verdict: watch::Receiver<Verdict>,
    /// Messages for sessions that moved out.
    pub relay: Relay,
}

/// The process's side of handing over: its phase, and the round under way.
#[derive(Debug)]
pub struct Handoff {
    phase: watch::Sender<Phase>,
    round: Mutex<Option<Round>>,
}

impl Default for Handoff {
    fn default() -> Self {
        Self {
            phase: watch::Sender::new(Phase::Serving),
            round: Mutex::new(None),
        }
    }
}

impl Handoff {
    /// The phase, to wait on.
    pub fn phase(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// Moves to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    /// Opens a round: sessions asked to move out find it here.
    pub fn open(&self, round: Round) {
        *self.round.lock().unwrap_or_else(|e| e.into_inner()) = Some(round);
    }

    /// Closes the round (its sessions keep their verdict).
    pub fn close(&self) {
        self.round.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Sends a session out, when a round is open; `None` otherwise (it goes on here).
    pub fn depart(&self, moving: Moving) -> Option<Departure> {
        let round = self.round.lock().unwrap_or_else(|e| e.into_inner());
        let round = round.as_ref()?;
        round.sessions.send(moving).ok()?;
        Some(Departure {
            verdict: round.verdict.clone(),
            relay: round.relay.clone(),
        })
    }
}

/// Waits for the verdict on a session that moved out.
pub async fn verdict(mut verdict: watch::Receiver<Verdict>) -> Verdict {
    match verdict.wait_for(|v| *v != Verdict::Waiting).await {
        Ok(v) => *v,
        Err(_) => Verdict::Failed,
    }
}
