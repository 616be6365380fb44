//! One TCP socket's inode by its four addresses, asked of the kernel through netlink `sock_diag`
//! (what `ss` uses): a single lookup in the kernel's hash of connections, where reading
//! `/proc/net/tcp` walks the whole table (milliseconds on a machine with a large one).
//!
//! Linux only. No `unsafe`: the netlink socket is a `socket2` socket that talks to the kernel
//! without an address (a netlink message sent without one goes to the kernel).

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

const AF_INET: u8 = 2;
const AF_NETLINK: i32 = 16;
const SOCK_DGRAM: i32 = 2;
const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const IPPROTO_TCP: u8 = 6;
const ENOENT: i32 = 2;
/// `struct nlmsghdr`.
const HEADER: usize = 16;
/// Where `idiag_inode` is in a reply: after the header, `struct inet_diag_msg`'s family, state,
/// timer, retrans (4 bytes), its `inet_diag_sockid` (48), expires, rqueue, wqueue and uid (16).
const INODE_AT: usize = HEADER + 4 + 48 + 16;

/// What the kernel said of a socket.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// It exists, with this inode (0: no process holds it any more).
    Inode(u64),
    /// No socket has these addresses.
    Missing,
}

/// The socket whose local address is `local` and remote address `remote`, both IPv4 (or mapped:
/// a dual-stack IPv6 socket connected to an IPv4 address is found the same way). An error when
/// the kernel cannot be asked (no `sock_diag`, or addresses that are not IPv4).
pub(super) fn lookup(local: SocketAddr, remote: SocketAddr) -> std::io::Result<Lookup> {
    let unsupported = || std::io::Error::from(std::io::ErrorKind::Unsupported);
    let (Some(src), Some(dst)) = (v4(local), v4(remote)) else {
        return Err(unsupported());
    };
    let socket = Socket::new(
        Domain::from(AF_NETLINK),
        Type::from(SOCK_DGRAM),
        Some(Protocol::from(NETLINK_SOCK_DIAG)),
    )?;
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    socket.send(&request(src, local.port(), dst, remote.port()))?;
    let mut reply = [0u8; 512];
    let n = (&socket).read(&mut reply)?;
    parse(
        reply.get(..n).unwrap_or_default(),
        local.port(),
        remote.port(),
    )
}

fn v4(addr: SocketAddr) -> Option<Ipv4Addr> {
    match addr {
        SocketAddr::V4(v4) => Some(*v4.ip()),
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped(),
    }
}

/// `nlmsghdr` + `inet_diag_req_v2` asking for exactly one socket (no dump).
fn request(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut message = Vec::with_capacity(HEADER + 56);
    message.extend_from_slice(&((HEADER + 56) as u32).to_ne_bytes());
    message.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    message.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    message.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    // family, protocol, extensions, padding; every state
    message.extend_from_slice(&[AF_INET, IPPROTO_TCP, 0, 0]);
    message.extend_from_slice(&u32::MAX.to_ne_bytes());
    // inet_diag_sockid: ports and addresses in network order, interface, no cookie
    message.extend_from_slice(&sport.to_be_bytes());
    message.extend_from_slice(&dport.to_be_bytes());
    message.extend_from_slice(&src.octets());
    message.extend_from_slice(&[0; 12]);
    message.extend_from_slice(&dst.octets());
    message.extend_from_slice(&[0; 12]);
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&u32::MAX.to_ne_bytes());
    message.extend_from_slice(&u32::MAX.to_ne_bytes());
    message
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The kernel's answer: one `inet_diag_msg` (whose ports must be the ones asked for), or an
/// error message (`ENOENT`: no such socket).
fn parse(reply: &[u8], sport: u16, dport: u16) -> std::io::Result<Lookup> {
    let malformed = || std::io::Error::other("malformed sock_diag reply");
    let kind = u16_at(reply, 4).ok_or_else(malformed)?;
    if kind == NLMSG_ERROR {
        let code = u32_at(reply, HEADER).ok_or_else(malformed)?.cast_signed();
        return if code == -ENOENT {
            Ok(Lookup::Missing)
        } else {
            Err(std::io::Error::from_raw_os_error(-code))
        };
    }
    if kind != SOCK_DIAG_BY_FAMILY {
        return Err(malformed());
    }
    let ports = reply.get(HEADER + 4..HEADER + 8).ok_or_else(malformed)?;
    let (got_sport, got_dport) = (
        u16::from_be_bytes([ports[0], ports[1]]),
        u16::from_be_bytes([ports[2], ports[3]]),
    );
    if (got_sport, got_dport) != (sport, dport) {
        return Err(malformed());
    }
    let inode = u32_at(reply, INODE_AT).ok_or_else(malformed)?;
    Ok(Lookup::Inode(u64::from(inode)))
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn both_ends_of_a_connection_are_found_and_a_closed_one_is_missing() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (accepted, peer) = listener.accept().expect("accept");
        let local = accepted.local_addr().expect("local");
        let Ok(Lookup::Inode(theirs)) = lookup(peer, local) else {
            panic!("the client's socket is not found");
        };
        let Ok(Lookup::Inode(ours)) = lookup(local, peer) else {
            panic!("the accepted socket is not found");
        };
        assert!(theirs != 0 && ours != 0 && theirs != ours);
        let nowhere: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        assert_eq!(lookup(nowhere, local).ok(), Some(Lookup::Missing));
        drop(client);
    }

    #[test]
    fn replies_are_read_with_bounds_and_checked() {
        assert!(parse(&[], 1, 2).is_err());
        assert!(parse(&[0; 10], 1, 2).is_err());
        let mut error = vec![0u8; HEADER + 4];
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[HEADER..].copy_from_slice(&(-ENOENT).to_ne_bytes());
        assert_eq!(parse(&error, 1, 2).ok(), Some(Lookup::Missing));
        let mut reply = vec![0u8; INODE_AT + 4];
        reply[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        reply[HEADER + 4..HEADER + 6].copy_from_slice(&1u16.to_be_bytes());
        reply[HEADER + 6..HEADER + 8].copy_from_slice(&2u16.to_be_bytes());
        reply[INODE_AT..].copy_from_slice(&77u32.to_ne_bytes());
        assert_eq!(parse(&reply, 1, 2).ok(), Some(Lookup::Inode(77)));
        assert!(parse(&reply, 2, 1).is_err(), "another socket's answer");
        assert!(parse(&reply[..INODE_AT], 1, 2).is_err(), "cut short");
    }
}
