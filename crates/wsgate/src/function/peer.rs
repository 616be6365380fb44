//! Who is at the other end of a worker's Runtime API connection.
//!
//! A worker's Runtime API listens on 127.0.0.1, where any local process could reach it. On Linux
//! the listener only hands over connections opened by the worker process wsgate started or by one
//! of its descendants (a bootstrap script may exec or fork the real runtime client): the peer's
//! socket is found by its addresses (asked of the kernel through netlink `sock_diag`, or read from
//! `/proc/net/tcp` and `tcp6` where that fails), and its inode must be among the open files
//! (`/proc/PID/fd`) of the worker or of a descendant. Any other connection
//! is closed before a byte is read or written. One check per TCP connection: a kept-alive
//! connection keeps its owner.
//!
//! Elsewhere there is no such check (`check` lets every connection through); the listener is
//! still on loopback only, and the Runtime API's own checks (`Host`, one `/next` at a time, request
//! ids) still apply.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tracing::warn;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
mod sock_diag;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No open socket has these addresses (it closed already, or `/proc` cannot be read).
    NoSocket,
    /// The socket belongs to a process outside the worker's tree.
    Outsider,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NoSocket => "its socket was not found",
            Self::Outsider => "it was opened by a process that is not the worker or its descendant",
        })
    }
}

/// Whether the TCP connection from `peer` to `local` (both on this machine) was opened by process
/// `root` or one of its descendants.
#[cfg(target_os = "linux")]
pub(super) fn check(root: u32, peer: SocketAddr, local: SocketAddr) -> Result<(), Refusal> {
    let inode = linux::socket_inode(peer, local).ok_or(Refusal::NoSocket)?;
    if linux::held_in_tree(root, inode) {
        Ok(())
    } else {
        Err(Refusal::Outsider)
    }
}

/// No way to tell a peer's process here: every connection is let through (see the module's doc).
#[cfg(not(target_os = "linux"))]
pub(super) fn check(_root: u32, _peer: SocketAddr, _local: SocketAddr) -> Result<(), Refusal> {
    Ok(())
}

/// A worker's Runtime API listener: hands over only the connections [`check`] lets through.
pub(super) struct WorkerListener {
    listener: TcpListener,
    /// The worker process.
    pid: u32,
    /// For logs.
    function: String,
}

impl WorkerListener {
    /// `listener`, serving process `pid` of `function` (and its descendants).
    pub(super) fn new(listener: TcpListener, pid: u32, function: String) -> Self {
        Self {
            listener,
            pid,
            function,
        }
    }
}

impl axum::serve::Listener for WorkerListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors, or a connection reset while queued: try again.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(local) = stream.local_addr() else {
                continue;
            };
            let pid = self.pid;
            // Reading /proc blocks: off the async workers.
            let verdict = tokio::task::spawn_blocking(move || check(pid, peer, local)).await;
            match verdict {
                Ok(Ok(())) => return (stream, peer),
                Ok(Err(refusal)) => {
                    warn!(function = %self.function, worker_pid = pid, %peer, "Runtime API connection refused: {refusal}");
                }
                Err(_) => {}
            }
            // Dropping it closes it: nothing was read from it, nothing is written.
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

#[allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "real processes and real time: blocking waits and wall-clock measurements"
)]
#[cfg(target_os = "linux")]
#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::OwnedFd;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    fn pair() -> (TcpListener, TcpStream, SocketAddr, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (accepted, peer) = listener.accept().expect("accept");
        let local = accepted.local_addr().expect("local");
        (listener, client, peer, local)
    }

    /// A child that lives until killed and holds none of our sockets.
    fn sleeper() -> std::process::Child {
        Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep")
    }

    #[test]
    fn a_connection_from_this_process_is_owned_by_this_process() {
        let (_listener, _client, peer, local) = pair();
        assert_eq!(check(std::process::id(), peer, local), Ok(()));
    }

    #[test]
    fn a_connection_of_this_process_is_not_another_processes() {
        let (_listener, _client, peer, local) = pair();
        let mut other = sleeper();
        assert_eq!(check(other.id(), peer, local), Err(Refusal::Outsider));
        let _ = other.kill();
        let _ = other.wait();
    }

    #[test]
    fn a_closed_or_unknown_peer_is_refused() {
        let (_listener, client, peer, local) = pair();
        drop(client);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            check(std::process::id(), peer, local),
            Err(Refusal::NoSocket)
        );
        let nowhere: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert_eq!(
            check(std::process::id(), nowhere, local),
            Err(Refusal::NoSocket)
        );
    }

    #[test]
    fn a_socket_held_only_by_a_grandchild_belongs_to_the_tree_of_its_ancestors() {
        let (_listener, client, peer, local) = pair();
        // sh forks sleep with the socket as its stdout, then lets go of its own copy: only the
        // grandchild holds it.
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg("sleep 30 & exec >/dev/null; wait")
            .stdin(Stdio::null())
            .stdout(Stdio::from(OwnedFd::from(client)));
        let mut sh = command.spawn().expect("sh");
        drop(command);
        let mut outsider = sleeper();
        let start = Instant::now();
        let settled =
            || check(sh.id(), peer, local).is_ok() && !linux_holds_directly(sh.id(), peer, local);
        while !settled() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(check(sh.id(), peer, local), Ok(()), "found in sh's child");
        assert!(
            !linux_holds_directly(sh.id(), peer, local),
            "sh itself let go of it"
        );
        assert_eq!(
            check(std::process::id(), peer, local),
            Ok(()),
            "our grandchild"
        );
        assert_eq!(check(outsider.id(), peer, local), Err(Refusal::Outsider));
        // Both ways of finding children agree.
        let by_stat = linux::children_by_stat();
        let mut from_stat = by_stat.get(&sh.id()).cloned().unwrap_or_default();
        let mut from_files = linux::children_of(sh.id());
        from_stat.sort_unstable();
        from_files.sort_unstable();
        assert_eq!(from_stat.len(), 1, "{from_stat:?}");
        assert_eq!(from_stat, from_files);
        for child in [&mut sh, &mut outsider] {
            let _ = child.kill();
            let _ = child.wait();
        }
        for grandchild in from_stat {
            let _ = Command::new("kill").arg(grandchild.to_string()).status();
        }
    }

    fn linux_holds_directly(pid: u32, peer: SocketAddr, local: SocketAddr) -> bool {
        let Some(inode) = linux::socket_inode(peer, local) else {
            return false;
        };
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|l| l.to_string_lossy() == format!("socket:[{inode}]"))
                })
            })
            .unwrap_or(false)
    }

    #[test]
    fn a_dual_stack_peer_is_found_in_tcp6() {
        // An IPv6 socket reaching our IPv4 listener through a mapped address sits in tcp6.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let Ok(_client) = TcpStream::connect(("::ffff:127.0.0.1", port)) else {
            return; // no IPv6 on this machine, or v6-only sockets
        };
        let (accepted, peer) = listener.accept().expect("accept");
        let local = accepted.local_addr().expect("local");
        assert!(
            linux::socket_inode(peer, local).is_some(),
            "{peer} → {local} not found"
        );
        assert_eq!(check(std::process::id(), peer, local), Ok(()));
        // And a v6 listener reached from an IPv4 socket: the peer is in tcp.
        let Ok(listener6) = TcpListener::bind("[::]:0") else {
            return;
        };
        let port = listener6.local_addr().expect("addr").port();
        let Ok(_client) = TcpStream::connect(("127.0.0.1", port)) else {
            return;
        };
        let (accepted, peer) = listener6.accept().expect("accept");
        let local = accepted.local_addr().expect("local");
        assert_eq!(check(std::process::id(), peer, local), Ok(()));
    }

    #[test]
    fn sock_diag_and_proc_net_tcp_name_the_same_socket() {
        let (_listener, _client, peer, local) = pair();
        let from_proc = linux::proc_inode(peer, local);
        assert!(from_proc.is_some());
        assert_eq!(linux::socket_inode(peer, local), from_proc);
    }

    /// What a check costs: `cargo test -p wsgate --lib peer -- --nocapture`.
    #[test]
    fn a_check_costs_little() {
        let (_listener, _client, peer, local) = pair();
        let mut other = sleeper();
        let rounds = 1000u32;
        let start = Instant::now();
        for _ in 0..rounds {
            assert_eq!(check(std::process::id(), peer, local), Ok(()));
        }
        let owner = start.elapsed() / rounds;
        let start = Instant::now();
        for _ in 0..rounds {
            assert_eq!(check(other.id(), peer, local), Err(Refusal::Outsider));
        }
        let outsider = start.elapsed() / rounds;
        let rounds_proc = 100u32;
        let start = Instant::now();
        for _ in 0..rounds_proc {
            assert!(linux::proc_inode(peer, local).is_some());
        }
        let proc = start.elapsed() / rounds_proc;
        let sockets = std::fs::read_to_string("/proc/net/tcp")
            .map(|t| t.lines().count().saturating_sub(1))
            .unwrap_or(0);
        println!(
            "peer check: {owner:?} when the owner is found, {outsider:?} for an outsider; \
             finding the socket in /proc/net/tcp instead of through sock_diag: {proc:?} \
             ({sockets} IPv4 sockets on the machine)"
        );
        let _ = other.kill();
        let _ = other.wait();
    }
}
