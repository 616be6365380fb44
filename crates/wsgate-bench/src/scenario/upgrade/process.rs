//! The gateway's side of an upgrade, seen from outside: its pid file, the signal, and whether a
//! process has exited.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::time::Instant;

/// How often the pid file and the old process are looked at while the upgrade runs: two small
/// reads, fine enough for times reported in milliseconds.
const POLL: Duration = Duration::from_millis(2);

/// The pid in a pid file (decimal, whitespace around it allowed).
pub fn read_pid(path: &Path) -> anyhow::Result<u32> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("{} holds no pid: {:?}", path.display(), text.trim()))
}

/// Whether process `pid` has exited: `/proc` has no entry for it, or it is a zombie. A zombie
/// has exited; only its parent, the script that started it and is now running this bench, has
/// not collected its status yet.
pub fn has_exited(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The state is the first field after the command name, which may hold spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some("Z" | "X"))
}

/// Sends SIGUSR2 to `pid` with kill(1): the bench forbids unsafe code, so no kill(2) of its own.
pub async fn send_usr2(pid: u32) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .arg("-USR2")
        .arg(pid.to_string())
        .status()
        .await
        .context("running kill")?;
    if status.success() {
        Ok(())
    } else {
        Err(anyhow!("kill -USR2 {pid} failed: {status}"))
    }
}

/// What was seen after the signal, each as the time since it was sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Handover {
    /// The pid the pid file names next, and when it first did.
    pub new_pid: Option<(u32, Duration)>,
    /// When the old process was first seen exited.
    pub old_exited: Option<Duration>,
}

impl Handover {
    /// The new process serves and the old one is gone.
    pub fn done(&self) -> bool {
        self.new_pid.is_some() && self.old_exited.is_some()
    }
}

/// Watches `pid_file` and `old_pid` from `signalled` until both changed, or `until`.
pub async fn watch(pid_file: &Path, old_pid: u32, signalled: Instant, until: Instant) -> Handover {
    let mut seen = Handover::default();
    // A pid file being rewritten may be read empty or half written ("12" of "1234"): a new pid
    // counts once two reads in a row agree, from the time of the first.
    let mut candidate: Option<(u32, Duration)> = None;
    while !seen.done() && Instant::now() < until {
        if seen.new_pid.is_none() {
            let read = read_pid(pid_file).ok().filter(|pid| *pid != old_pid);
            candidate = match (candidate, read) {
                (Some((first, at)), Some(again)) if first == again => {
                    seen.new_pid = Some((first, at));
                    None
                }
                (_, Some(pid)) => Some((pid, signalled.elapsed())),
                (_, None) => None,
            };
        }
        if seen.old_exited.is_none() && has_exited(old_pid) {
            seen.old_exited = Some(signalled.elapsed());
        }
        tokio::time::sleep(POLL).await;
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_not_exited_and_a_missing_one_has() {
        assert!(!has_exited(std::process::id()));
        // Above the kernel's pid_max (at most 2^22): never a live process.
        assert!(has_exited(u32::MAX - 1));
    }

    #[test]
    fn a_pid_file_is_read_with_its_newline() {
        let dir = std::env::temp_dir().join(format!("wsgate-bench-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let file = dir.join("gw.pid");
        std::fs::write(&file, "1234\n").expect("written");
        assert_eq!(read_pid(&file).expect("a pid"), 1234);
        std::fs::write(&file, "").expect("emptied");
        assert!(read_pid(&file).is_err());
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[tokio::test]
    async fn watch_sees_a_new_pid_and_an_exit() {
        let dir = std::env::temp_dir().join(format!("wsgate-bench-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let file = dir.join("gw.pid");
        let mut child = tokio::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .expect("sleep runs");
        let old = child.id().expect("a pid");
        std::fs::write(&file, format!("{old}\n")).expect("written");
        let me = std::process::id();
        let writer = {
            let file = file.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::fs::write(&file, format!("{me}\n")).expect("rewritten");
            })
        };
        let reaper = tokio::spawn(async move { child.wait().await });
        let start = Instant::now();
        let seen = watch(&file, old, start, start + Duration::from_secs(5)).await;
        writer.await.expect("writer ran");
        reaper.await.expect("reaped").expect("sleep exited");
        let (new, at) = seen.new_pid.expect("the new pid was seen");
        assert_eq!(new, me);
        assert!(at >= Duration::from_millis(50), "{at:?}");
        assert!(seen.old_exited.expect("the exit was seen") >= Duration::from_millis(200));
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}
