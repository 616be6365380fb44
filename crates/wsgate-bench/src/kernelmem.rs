//! The kernel's memory for sockets, which no process's RSS shows: the pages TCP has charged for
//! buffers (`/proc/net/sockstat`, `TCP: ... mem M`) and the slab objects every open socket holds
//! (`/proc/slabinfo`, readable by root only). Both are machine-wide, so a measurement is the
//! difference between two snapshots, and on loopback it covers both ends of every connection.

use std::collections::BTreeMap;
use std::fs;

use serde_json::{Map, Value, json};

use crate::stats::round3;

/// The slab caches that grow by about one object per open TCP socket, measured on Linux 6.18 by
/// diffing `/proc/slabinfo` around 15,000 held loopback connections: the socket itself (`TCP`,
/// 2,368 B), its inode and file (`sock_inode_cache`, `filp`, `dentry`, the LSM blobs of both),
/// its epoll registration (`eventpoll_epi`, `eventpoll_pwq`, `ep_head`) and, on the connecting
/// end only, the bucket of its ephemeral port (`tcp_bind_bucket`, `tcp_bind2_bucket`).
const SOCKET_SLABS: [&str; 11] = [
    "TCP",
    "sock_inode_cache",
    "filp",
    "dentry",
    "lsm_inode_cache",
    "lsm_file_cache",
    "eventpoll_epi",
    "eventpoll_pwq",
    "ep_head",
    "tcp_bind_bucket",
    "tcp_bind2_bucket",
];

/// Used when the page size cannot be read: the size of a page on x86-64 and most arm64 kernels.
const DEFAULT_PAGE_BYTES: u64 = 4096;

/// One slab cache's line of `/proc/slabinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slab {
    pub active_objects: u64,
    pub object_bytes: u64,
}

/// The kernel's socket memory at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `mem` of the `TCP:` line of `/proc/net/sockstat`, in pages.
    tcp_mem_pages: Option<u64>,
    /// The lines of `/proc/slabinfo` that hold [`SOCKET_SLABS`], by the name slabinfo shows
    /// (caches the kernel merged appear under one name, once); `None` when it is unreadable.
    slabs: Option<BTreeMap<String, Slab>>,
}

impl Snapshot {
    /// Reads `/proc/net/sockstat` and `/proc/slabinfo` now.
    pub fn take() -> Self {
        let tcp_mem_pages = fs::read_to_string("/proc/net/sockstat")
            .ok()
            .and_then(|text| parse_tcp_mem_pages(&text));
        let slabs = fs::read_to_string("/proc/slabinfo").ok().map(|text| {
            let all = parse_slabinfo(&text);
            SOCKET_SLABS
                .iter()
                .filter_map(|name| {
                    let shown = shown_as(name, &all)?;
                    Some((shown.clone(), all[&shown]))
                })
                .collect()
        });
        Self {
            tcp_mem_pages,
            slabs,
        }
    }
}

/// The `TCP:` line of `/proc/net/sockstat` (`TCP: inuse 3 orphan 0 tw 2 alloc 5 mem 131`) → its
/// `mem`, in pages.
pub fn parse_tcp_mem_pages(sockstat: &str) -> Option<u64> {
    let line = sockstat.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    fields
        .chunks(2)
        .find(|pair| pair.first() == Some(&"mem"))?
        .get(1)?
        .parse()
        .ok()
}

/// `/proc/slabinfo` (version 2.1: `name active_objs num_objs objsize ...`, after two header
/// lines) → each cache's active objects and object size.
pub fn parse_slabinfo(slabinfo: &str) -> BTreeMap<String, Slab> {
    slabinfo
        .lines()
        .filter(|l| !l.starts_with("slabinfo") && !l.starts_with('#'))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let slab = Slab {
                active_objects: fields.get(1)?.parse().ok()?,
                object_bytes: fields.get(3)?.parse().ok()?,
            };
            Some(((*fields.first()?).to_owned(), slab))
        })
        .collect()
}

/// The name under which slabinfo shows cache `name`: its own, or, when the kernel merged it with
/// caches of the same size (`/sys/kernel/slab/NAME` then links to a shared `:A-0000128`), the
/// listed name whose entry there is the same cache. `None` when the kernel has no such cache.
fn shown_as(name: &str, listed: &BTreeMap<String, Slab>) -> Option<String> {
    if listed.contains_key(name) {
        return Some(name.to_owned());
    }
    let cache = |name: &str| fs::canonicalize(format!("/sys/kernel/slab/{name}")).ok();
    let target = cache(name)?;
    listed
        .keys()
        .find(|other| cache(other).as_ref() == Some(&target))
        .cloned()
}

/// The kernel's page size, from the `KernelPageSize` of this process's first mapping.
fn page_bytes() -> u64 {
    fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|smaps| {
            let line = smaps
                .lines()
                .find_map(|l| l.strip_prefix("KernelPageSize:"))?;
            let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(DEFAULT_PAGE_BYTES)
}

/// The fields of the kernel's memory between `before` and `after`, divided by `ends` (twice
/// the connections on loopback, where this machine holds both ends of each):
/// `kernel_tcp_mem_pages_before`/`_after`, `kernel_tcp_mem_bytes_per_end` (buffer pages; other
/// traffic on the machine moves it too, so it may come out below zero), and
/// `kernel_socket_slab_bytes_per_end` with `kernel_socket_slabs_bytes_per_end` by slab (null when
/// `/proc/slabinfo` is not readable: it needs root).
pub fn fields(before: &Snapshot, after: &Snapshot, ends: usize, out: &mut Map<String, Value>) {
    let ends = ends.max(1) as f64;
    out.insert(
        "kernel_tcp_mem_pages_before".into(),
        json!(before.tcp_mem_pages),
    );
    out.insert(
        "kernel_tcp_mem_pages_after".into(),
        json!(after.tcp_mem_pages),
    );
    let tcp_mem = match (before.tcp_mem_pages, after.tcp_mem_pages) {
        (Some(b), Some(a)) => json!(round3((a as f64 - b as f64) * page_bytes() as f64 / ends)),
        _ => Value::Null,
    };
    out.insert("kernel_tcp_mem_bytes_per_end".into(), tcp_mem);
    let (total, by_slab) = match (&before.slabs, &after.slabs) {
        (Some(b), Some(a)) => {
            let by_slab = slab_growth(b, a, ends);
            let total: f64 = by_slab.values().sum();
            (json!(round3(total)), json!(by_slab))
        }
        _ => (Value::Null, Value::Null),
    };
    out.insert("kernel_socket_slab_bytes_per_end".into(), total);
    out.insert("kernel_socket_slabs_bytes_per_end".into(), by_slab);
}

/// Bytes per end each slab grew by: active objects after − before, × object size, / ends.
fn slab_growth(
    before: &BTreeMap<String, Slab>,
    after: &BTreeMap<String, Slab>,
    ends: f64,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(name, a)| {
            let b = before.get(name).map_or(0, |b| b.active_objects);
            let grown = a.active_objects as f64 - b as f64;
            (name.clone(), round3(grown * a.object_bytes as f64 / ends))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Taken from Linux 6.18 holding 15,000 loopback connections (lines shortened to the fields
    /// read, which keeps their positions).
    const SOCKSTAT: &str = "sockets: used 30032\n\
        TCP: inuse 30015 orphan 0 tw 2204 alloc 30015 mem 74\n\
        UDP: inuse 0 mem 0\n\
        UDPLITE: inuse 0\n";

    const SLABINFO: &str = "slabinfo - version: 2.1\n\
        # name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>\n\
        TCPv6                 26     26   2496   13    8 : tunables    0    0    0 : slabdata      2      2      0\n\
        TCP                30056  30108   2368   13    8 : tunables    0    0    0 : slabdata   2316   2316      0\n\
        eventpoll_epi      55749  55904    128   32    1 : tunables    0    0    0 : slabdata   1747   1747      0\n";

    #[test]
    fn sockstat_gives_the_pages_of_tcp_and_not_of_udp() {
        assert_eq!(parse_tcp_mem_pages(SOCKSTAT), Some(74));
        assert_eq!(parse_tcp_mem_pages("UDP: inuse 0 mem 9\n"), None);
    }

    #[test]
    fn slabinfo_gives_active_objects_and_object_size_per_cache() {
        let slabs = parse_slabinfo(SLABINFO);
        assert_eq!(slabs.len(), 3, "{slabs:?}");
        assert_eq!(
            slabs["TCP"],
            Slab {
                active_objects: 30056,
                object_bytes: 2368
            }
        );
        assert_eq!(slabs["eventpoll_epi"].object_bytes, 128);
    }

    #[test]
    fn slab_growth_is_divided_by_the_ends() {
        let after = parse_slabinfo(SLABINFO);
        let mut before = after.clone();
        before.get_mut("TCP").expect("TCP").active_objects -= 30_000;
        let growth = slab_growth(&before, &after, 30_000.0);
        assert_eq!(growth["TCP"], 2368.0);
        assert_eq!(growth["TCPv6"], 0.0);
    }

    #[test]
    fn unreadable_slabinfo_is_reported_as_null() {
        let before = Snapshot {
            tcp_mem_pages: Some(10),
            slabs: None,
        };
        let after = Snapshot {
            tcp_mem_pages: Some(10),
            slabs: None,
        };
        let mut out = Map::new();
        fields(&before, &after, 2, &mut out);
        assert_eq!(out["kernel_socket_slab_bytes_per_end"], Value::Null);
        assert_eq!(out["kernel_tcp_mem_bytes_per_end"], json!(0.0));
    }
}
