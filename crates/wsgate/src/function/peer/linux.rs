//! The Linux side of [`super::check`]: the peer socket's inode (from `sock_diag`, else
//! `/proc/net/tcp*`) and whether a process tree holds it (`/proc/PID/fd`, children from
//! `/proc/PID/task/TID/children`, else from every process's `stat`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::OnceLock;

use super::sock_diag::Lookup;

/// At most this many processes are looked at in a worker's tree.
const MAX_TREE: usize = 4096;

/// The inode of the socket whose local address is `peer` and remote address `local`: the
/// other end of a connection accepted on `local`. `None` when there is none, or it has no
/// owner any more (inode 0).
pub(super) fn socket_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    match super::sock_diag::lookup(peer, local) {
        Ok(Lookup::Inode(inode)) => (inode != 0).then_some(inode),
        Ok(Lookup::Missing) => None,
        Err(_) => proc_inode(peer, local),
    }
}

/// [`socket_inode`] from `/proc/net/tcp` and `tcp6`, where `sock_diag` is not to be had.
pub(super) fn proc_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    let v4 = match (v4_of(peer.ip()), v4_of(local.ip())) {
        (Some(p), Some(l)) => Some((
            entry(&[u32::from_ne_bytes(p.octets())], peer.port()),
            entry(&[u32::from_ne_bytes(l.octets())], local.port()),
        )),
        _ => None,
    };
    let v6 = (
        entry(&words6(peer.ip()), peer.port()),
        entry(&words6(local.ip()), local.port()),
    );
    if let Some((p, l)) = v4
        && let Some(inode) = find("/proc/net/tcp", &p, &l)
    {
        return Some(inode);
    }
    find("/proc/net/tcp6", &v6.0, &v6.1)
}

/// An IPv4 address, or an IPv6 one that maps one.
fn v4_of(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// An address as `/proc/net/tcp*` writes it: each 32-bit word of the address as the kernel
/// holds it (network order bytes read as a native integer), in upper-case hex, then the port.
fn entry(words: &[u32], port: u16) -> String {
    let mut text: String = words.iter().map(|w| format!("{w:08X}")).collect();
    text.push_str(&format!(":{port:04X}"));
    text
}

/// An address as an IPv6 socket sees it (an IPv4 one mapped), in four words.
fn words6(ip: IpAddr) -> [u32; 4] {
    let octets = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    let mut words = [0u32; 4];
    for (word, chunk) in words.iter_mut().zip(octets.chunks_exact(4)) {
        *word = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    words
}

/// The inode on the line of `table` whose local and remote addresses are these; read line by
/// line, stopping at the match.
fn find(table: &str, local: &str, remote: &str) -> Option<u64> {
    let mut reader = BufReader::new(File::open(table).ok()?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
        let mut fields = line.split_ascii_whitespace().skip(1);
        if fields.next() != Some(local) || fields.next() != Some(remote) {
            continue;
        }
        let inode = fields.nth(6)?.parse().ok()?;
        return (inode != 0).then_some(inode);
    }
}

/// Whether process `root` or one of its descendants has the socket `inode` open.
pub(super) fn held_in_tree(root: u32, inode: u64) -> bool {
    let target = PathBuf::from(format!("socket:[{inode}]"));
    let by_stat = (!children_files()).then(children_by_stat);
    let mut queue = VecDeque::from([root]);
    let mut seen = HashSet::from([root]);
    while let Some(pid) = queue.pop_front() {
        if holds(pid, &target) {
            return true;
        }
        let children = match &by_stat {
            Some(map) => map.get(&pid).cloned().unwrap_or_default(),
            None => children_of(pid),
        };
        for child in children {
            if seen.len() < MAX_TREE && seen.insert(child) {
                queue.push_back(child);
            }
        }
    }
    false
}

/// Whether process `pid` has `target` (`socket:[inode]`) among its open files.
fn holds(pid: u32, target: &PathBuf) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| fs::read_link(fd.path()).is_ok_and(|link| link == *target))
}

/// Whether this kernel has `/proc/PID/task/TID/children` (CONFIG_PROC_CHILDREN).
fn children_files() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let pid = std::process::id();
        fs::metadata(format!("/proc/{pid}/task/{pid}/children")).is_ok()
    })
}

/// The children of `pid`, from each of its threads' `children` file.
pub(super) fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_ascii_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// parent → children, from every process's `stat` (kernels without `children` files).
pub(super) fn children_by_stat() -> HashMap<u32, Vec<u32>> {
    let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return map;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_ascii_whitespace().nth(1))
            .and_then(|ppid| ppid.parse().ok());
        if let Some(ppid) = ppid {
            map.entry(ppid).or_default().push(pid);
        }
    }
    map
}
