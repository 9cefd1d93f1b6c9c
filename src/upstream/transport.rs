//! How the forwarder reaches its targets. [`Sockets`] is the real network; a test injects its own
//! [`Transport`] (a scripted network on tokio's paused clock) to check deadlines, retries, failover and hold-down
//! to the millisecond without waiting and without depending on how loaded the machine is.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// A boxed I/O future (the traits are object-safe, so a config can hold any transport).
pub type Io<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send + 'a>>;

/// Opens the channels of one upstream exchange.
pub trait Transport: Send + Sync + Debug {
    /// A datagram channel from `local` (port 0: any) to `target`; only `target`'s datagrams are received.
    fn udp(&self, local: SocketAddr, target: SocketAddr) -> Io<'_, Box<dyn Datagram>>;
    /// A stream connected to `target`, from `local` when given.
    fn tcp(&self, local: Option<SocketAddr>, target: SocketAddr) -> Io<'_, Box<dyn Stream>>;
}

/// A connected datagram channel. A receive error is a network failure reported by the peer's host (ICMP).
pub trait Datagram: Send + Sync {
    fn send<'a>(&'a self, packet: &'a [u8]) -> Io<'a, ()>;
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> Io<'a, usize>;
}

/// A byte stream (DNS over TCP frames each message with its length).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The host's network.
#[derive(Debug, Default)]
pub struct Sockets;

impl Transport for Sockets {
    fn udp(&self, local: SocketAddr, target: SocketAddr) -> Io<'_, Box<dyn Datagram>> {
        Box::pin(async move {
            let sock = UdpSocket::bind(local).await?;
            // Connected: the kernel drops datagrams from other addresses and reports ICMP errors to us.
            sock.connect(target).await?;
            Ok(Box::new(sock) as Box<dyn Datagram>)
        })
    }

    fn tcp(&self, local: Option<SocketAddr>, target: SocketAddr) -> Io<'_, Box<dyn Stream>> {
        Box::pin(async move {
            let sock = if target.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            if let Some(local) = local {
                sock.bind(local)?;
            }
            let stream: TcpStream = sock.connect(target).await?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }
}

impl Datagram for UdpSocket {
    fn send<'a>(&'a self, packet: &'a [u8]) -> Io<'a, ()> {
        Box::pin(async move { Self::send(self, packet).await.map(drop) })
    }
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> Io<'a, usize> {
        Box::pin(Self::recv(self, buf))
    }
}
