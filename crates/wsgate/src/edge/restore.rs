//! Sessions kept across a restart (`gateway.state_dir`) come back: each is registered again —
//! the same connection id, context, groups and user — and waits, suspended, for its client's
//! resume for the rest of its window; POSTs to it are kept meanwhile. One whose window passed
//! while the gateway was down has its `$disconnect` told now.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::info;
use wsgate_core::clock;

use super::session::{self, Reliable, SessionLimits, Start};
use wsgate_core::event::ConnectionContext;

use crate::cluster::Taken;
use crate::handoff::wire::Reliability;
use crate::hub::{self, Inbox, SessionHandle};
use crate::resume::Replay;
use crate::saved::Saved;
use crate::state::SessionServices;

/// Takes in a session another node of the cluster let go, or one of a dead node taken from
/// Redis (`from` says which, for the log): registered here, suspended for what is left of its
/// window, with the messages posted to it after its node died queued for it.
pub(crate) fn take_in(services: &Arc<SessionServices>, (saved, late): Taken, from: &str) {
    let id = saved.ctx.connection_id;
    restore(services, vec![saved], from);
    if let Some(handle) = services.hub.get(&id) {
        for command in late {
            let _ = handle.outbox.push(command);
        }
    }
}

/// Registers `sessions` again, each suspended for what is left of its resume window; `from`
/// says where they come from, for the log.
pub(crate) fn restore(services: &Arc<SessionServices>, sessions: Vec<Saved>, from: &str) {
    let services = services.clone();
    let limits = services.deployment.load().config.limits.clone();
    let session_limits = SessionLimits::from(&limits);
    let now = clock::now_ms();
    let (mut waiting, mut expired) = (0, 0);
    for saved in sessions {
        let away = Duration::from_millis(now.saturating_sub(saved.suspended_at_ms));
        let Some(window) = limits
            .resume_window
            .checked_sub(away)
            .filter(|w| !w.is_zero())
        else {
            expired += 1;
            let (services, ctx, code) = (services.clone(), saved.ctx, saved.code);
            services.lifecycle.tasks.clone().spawn(async move {
                session::disconnect(&services, &ctx, code, session::reason_of(code)).await;
            });
            continue;
        };
        waiting += 1;
        let reliability = Reliability {
            token: saved.token,
            last_seq: saved.last_seq,
            dropped_to: saved.dropped_to,
            kept: saved.kept,
        };
        let (handle, inbox, reliable) = register_again(
            &services,
            saved.ctx,
            &saved.groups,
            saved.user.as_deref(),
            saved.last_active_ms,
            Some(reliability),
        );
        let start = Start::Suspended {
            window,
            code: saved.code,
        };
        let services = services.clone();
        services.lifecycle.tasks.clone().spawn(async move {
            session::run(services, handle, inbox, session_limits, start, reliable).await;
        });
    }
    if waiting + expired > 0 {
        info!(
            waiting,
            expired, "sessions kept by {from}: waiting for their resumes"
        );
    }
}

/// Registers a connection that comes back from another process — the same id, context, groups
/// and user, and its resume state — and returns what its session runs with.
pub(super) fn register_again(
    services: &SessionServices,
    ctx: ConnectionContext,
    groups: &[String],
    user: Option<&str>,
    last_active_ms: u64,
    reliability: Option<Reliability>,
) -> (Arc<SessionHandle>, Inbox, Option<Box<Reliable>>) {
    let limits = &services.deployment.load().config.limits;
    let id = ctx.connection_id;
    let (outbox, inbox) = hub::outbox(limits.outbox_bytes);
    let handle = Arc::new(SessionHandle::new(Arc::new(ctx), outbox));
    handle.touch(last_active_ms);
    services.hub.insert(handle.clone());
    for group in groups {
        let _ = services.hub.join(&id, group);
    }
    let _ = services.hub.set_user(&id, user);
    let reliable = reliability.map(|r| {
        let (sender, resumes) = mpsc::channel(1);
        services
            .resumes
            .issue_as(r.token.clone(), id, sender.clone());
        Box::new(Reliable {
            resumes,
            sender,
            token: r.token,
            replay: Replay::restore(r.last_seq, r.dropped_to, r.kept),
        })
    });
    (handle, inbox, reliable)
}
