//! The UDP layer: sockets that report the address each datagram arrived on and reply from that same address, and
//! that receive in batches into buffers reused from batch to batch.
//!
//! quinn-udp does the system calls (recvmmsg with IP_PKTINFO / IPV6_RECVPKTINFO control messages, sendmsg with a
//! source address), so a wildcard socket (`0.0.0.0:53`, `[::]:53`) can tell a VPC resolver address from an inbound
//! endpoint address and answers from the address the client asked; stub resolvers (dnspython, glibc) drop replies
//! that come from any other address. On a socket bound to one address the replies to one batch leave in one
//! sendmmsg ([`Outbox`], through rustix): a system call per reply, and on a busy machine a preemption at its
//! return, was about a seventh of the CPU per query.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use std::io::IoSlice;

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
use tokio::io::Interest;
use tracing::{debug, warn};

/// Datagrams taken from the kernel in one recvmmsg.
pub(super) const BATCH: usize = 32;

/// Room per datagram slot: the largest UDP payload, and also the most the kernel coalesces into one slot when it
/// applies UDP GRO (which quinn-udp turns on; the datagrams are then split by `stride`).
const SLOT: usize = 65535;

/// Receive buffer asked for per socket: dnsperf bursts of 500 outstanding queries from several clients overflow the
/// default (208 KiB); NSD's 2 MiB lost none in the same test.
pub(super) const RECV_BUFFER: usize = 4 << 20;

/// One socket and the state quinn-udp keeps for it.
pub(super) struct Socket {
    io: tokio::net::UdpSocket,
    state: UdpSocketState,
    /// The address the socket is bound to, when it is not a wildcard: the arrival address of everything it reads.
    bound: Option<IpAddr>,
}

/// Buffers for one batch, allocated once per socket task and reused for every batch.
pub(super) struct Batch {
    buf: Vec<u8>,
    meta: [RecvMeta; BATCH],
    filled: usize,
}

/// One received datagram: who sent it and the local address it was sent to.
pub(super) struct Datagram<'a> {
    pub(super) payload: &'a [u8],
    pub(super) src: SocketAddr,
    /// The arrival address (from IP_PKTINFO / IPV6_PKTINFO, or the bound address); `None` only if the kernel
    /// reported none on a wildcard socket.
    pub(super) local: Option<IpAddr>,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            buf: vec![0; BATCH * SLOT],
            meta: [RecvMeta::default(); BATCH],
            filled: 0,
        }
    }
}

impl Batch {
    /// The datagrams of the last receive, in order (coalesced slots split at `stride`).
    pub(super) fn datagrams(&self, bound: Option<IpAddr>) -> impl Iterator<Item = Datagram<'_>> {
        self.meta[..self.filled]
            .iter()
            .zip(self.buf.chunks(SLOT))
            .flat_map(move |(meta, slot)| {
                let stride = meta.stride.max(1);
                slot[..meta.len.min(SLOT)]
                    .chunks(stride)
                    .map(move |payload| Datagram {
                        payload,
                        src: meta.addr,
                        local: meta.dst_ip.or(bound),
                    })
            })
    }
}

impl Socket {
    /// Wraps a bound, non-blocking socket; must be called inside a tokio runtime.
    pub(super) fn new(sock: std::net::UdpSocket) -> io::Result<Self> {
        let ip = sock.local_addr()?.ip();
        let bound = (!ip.is_unspecified()).then_some(ip);
        // Turns on the arrival-address control messages (and GRO where the kernel has it).
        let state = UdpSocketState::new(UdpSockRef::from(&sock))?;
        if bound.is_some() {
            quiet_control_messages(&sock, ip.is_ipv6());
        }
        Ok(Self {
            io: tokio::net::UdpSocket::from_std(sock)?,
            state,
            bound,
        })
    }

    pub(super) fn bound(&self) -> Option<IpAddr> {
        self.bound
    }

    /// Waits for datagrams and takes up to [`BATCH`] of them in one system call.
    pub(super) async fn recv(&self, batch: &mut Batch) -> io::Result<()> {
        let Batch { buf, meta, filled } = batch;
        *filled = 0;
        let n = self
            .io
            .async_io(Interest::READABLE, || {
                let mut chunks = buf.chunks_mut(SLOT);
                let mut slices: [IoSliceMut<'_>; BATCH] =
                    std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
                self.state
                    .recv(UdpSockRef::from(&self.io), &mut slices, &mut meta[..])
            })
            .await?;
        *filled = n;
        Ok(())
    }

    /// Sends `payload` to `dst` from `src_ip` (the query's arrival address); waits briefly if the send buffer is
    /// full rather than stalling the socket's other clients.
    pub(super) async fn send(&self, payload: &[u8], dst: SocketAddr, src_ip: Option<IpAddr>) {
        let transmit = Transmit {
            destination: dst,
            ecn: None,
            contents: payload,
            segment_size: None,
            src_ip,
        };
        let sent = match self.try_send(&transmit) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => tokio::time::timeout(
                Duration::from_millis(100),
                self.io
                    .async_io(Interest::WRITABLE, || self.try_send(&transmit)),
            )
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
            other => other,
        };
        if let Err(e) = sent {
            debug!(error = %e, %dst, "udp send failed");
        }
    }

    /// Sends what `outbox` holds and empties it; on a full send buffer it waits as [`Socket::send`] does. A socket
    /// bound to one address sends with sendmmsg; a wildcard socket sends reply by reply, each naming its source
    /// address in a PKTINFO control message (which rustix's sendmmsg cannot carry).
    pub(super) async fn flush(&self, outbox: &mut Outbox) {
        if self.bound.is_none() {
            for (i, q) in outbox.replies.iter().enumerate() {
                self.send(outbox.reply(i), q.dst, q.src_ip).await;
            }
            return outbox.clear();
        }
        let mut next = 0;
        while next < outbox.replies.len() {
            let sent = match outbox.try_send(self, next) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => tokio::time::timeout(
                    Duration::from_millis(100),
                    self.io
                        .async_io(Interest::WRITABLE, || outbox.try_send(self, next)),
                )
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
                other => other,
            };
            next += match sent {
                Ok(n) => n,
                Err(e) => {
                    // The first reply of the call was refused (a bad destination): skip it, keep the others.
                    debug!(error = %e, dst = %outbox.replies[next].dst, "udp send failed");
                    1
                }
            };
        }
        outbox.clear();
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.io.try_io(Interest::WRITABLE, || {
            self.state.try_send(UdpSockRef::from(&self.io), transmit)
        })
    }
}

/// One queued reply: where its bytes end in [`Outbox::bytes`], where it goes, and the address it leaves from.
struct Queued {
    end: usize,
    dst: SocketAddr,
    src_ip: Option<IpAddr>,
}

/// Replies waiting to leave together, allocated once per socket task.
pub(super) struct Outbox {
    bytes: Vec<u8>,
    replies: Vec<Queued>,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            bytes: Vec::with_capacity(BATCH * 512),
            replies: Vec::with_capacity(BATCH),
        }
    }
}

impl Outbox {
    /// Queues `reply`; `true` when the outbox is full and must be flushed before the next push.
    pub(super) fn push(&mut self, reply: &[u8], dst: SocketAddr, src_ip: Option<IpAddr>) -> bool {
        self.bytes.extend_from_slice(reply);
        self.replies.push(Queued {
            end: self.bytes.len(),
            dst,
            src_ip,
        });
        self.replies.len() == BATCH
    }

    fn reply(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.replies[i - 1].end };
        &self.bytes[start..self.replies[i].end]
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.replies.clear();
    }

    /// One sendmmsg of the replies from `first` on; how many the kernel took.
    fn try_send(&self, sock: &Socket, first: usize) -> io::Result<usize> {
        let count = (self.replies.len() - first).min(BATCH);
        // Slots past `count` repeat the last reply; only the first `count` messages are handed to the kernel.
        let at = |k: usize| first + k.min(count - 1);
        let iovs: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|k| [IoSlice::new(self.reply(at(k)))]);
        let addrs: [SocketAddrAny; BATCH] =
            std::array::from_fn(|k| SocketAddrAny::from(self.replies[at(k)].dst));
        let mut controls: [SendAncillaryBuffer<'_, '_, '_>; BATCH] = Default::default();
        let mut controls = controls.iter_mut();
        let mut msgs: [MMsgHdr<'_>; BATCH] = std::array::from_fn(|k| {
            let control = controls.next().expect("one control buffer per message");
            MMsgHdr::new_with_addr(&addrs[k], &iovs[k], control)
        });
        sock.io.try_io(Interest::WRITABLE, || {
            Ok(sendmmsg(&sock.io, &mut msgs[..count], SendFlags::empty())?)
        })
    }
}

/// Turns off the arrival-address and TOS control messages on a socket bound to one address: the address is known,
/// ECN is not used, and the kernel building and quinn-udp parsing two messages per datagram was about 2% of the CPU
/// per query (perf, NXDOMAIN load). Failing leaves them on, which is only slower.
fn quiet_control_messages(sock: &std::net::UdpSocket, v6: bool) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = if v6 {
        setsockopt(sock, sockopt::Ipv6RecvPacketInfo, &false)
            .and_then(|()| setsockopt(sock, sockopt::Ipv6RecvTClass, &false))
    } else {
        setsockopt(sock, sockopt::Ipv4PacketInfo, &false)
            .and_then(|()| setsockopt(sock, sockopt::IpRecvTos, &false))
    };
}

/// Sets the receive buffer to [`RECV_BUFFER`]: SO_RCVBUFFORCE (root, beyond `net.core.rmem_max`), else SO_RCVBUF.
pub(super) fn set_recv_buffer(sock: &socket2::Socket) {
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(sock, sockopt::RcvBufForce, &RECV_BUFFER).is_err() {
        let _ = sock.set_recv_buffer_size(RECV_BUFFER);
    }
    // Linux reports twice what was set (bookkeeping overhead); less than asked means rmem_max capped it.
    if let Ok(got) = sock.recv_buffer_size()
        && got < RECV_BUFFER
    {
        warn!(
            bytes = got,
            wanted = RECV_BUFFER,
            "UDP receive buffer smaller than wanted (raise net.core.rmem_max, or run as root); bursts may lose queries"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot the kernel coalesced (GRO) comes out as its datagrams, each with the slot's addresses.
    #[test]
    fn coalesced_slots_split_at_stride() {
        let mut batch = Batch::default();
        let src: SocketAddr = "192.0.2.1:5353".parse().unwrap();
        let dst: IpAddr = "10.0.0.2".parse().unwrap();
        batch.buf[..5].copy_from_slice(b"aabbc");
        batch.buf[SLOT..SLOT + 3].copy_from_slice(b"xyz");
        for (i, (len, stride)) in [(5, 2), (3, 3)].into_iter().enumerate() {
            let mut meta = RecvMeta::default();
            meta.addr = src;
            meta.len = len;
            meta.stride = stride;
            meta.dst_ip = (i == 0).then_some(dst);
            batch.meta[i] = meta;
        }
        batch.filled = 2;
        let bound: IpAddr = "10.0.9.9".parse().unwrap();
        let got: Vec<(&[u8], Option<IpAddr>)> = batch
            .datagrams(Some(bound))
            .map(|d| (d.payload, d.local))
            .collect();
        let want: Vec<(&[u8], Option<IpAddr>)> = vec![
            (b"aa", Some(dst)),
            (b"bb", Some(dst)),
            (b"c", Some(dst)),
            // No arrival address reported: the bound address stands in.
            (b"xyz", Some(bound)),
        ];
        assert_eq!(got, want);
    }
}
