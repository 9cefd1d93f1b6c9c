//! The whole request path on arbitrary bytes: parse, access control, opcode/EDNS/class rules, the decision engine
//! over the embedded reference lab, and encoding. Through `Responder`, which runs the server's own handler.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use vpc_resolver::server::{Answered, Protocol, Responder, ServerConfig};
use vpc_resolver::topology;

static RESPONDER: LazyLock<Responder> = LazyLock::new(|| {
    let topo = topology::default_topology().expect("the embedded topology is valid");
    Responder::new(topo, &ServerConfig::default()).expect("a responder for the embedded topology")
});

/// Sources that exercise each admission path: loopback, a VPC client, a stranger, an IPv4-mapped IPv6 address.
const SOURCES: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, 10)),
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x0a00, 0x010a)),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };
    let protocol = if selector & 1 == 0 {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    let src = SocketAddr::new(SOURCES[usize::from(selector >> 1) % SOURCES.len()], 40000);
    match RESPONDER.answer(packet, src, None, protocol) {
        Answered::Reply(out) => {
            if protocol == Protocol::Udp {
                assert!(out.len() <= 1232, "UDP reply of {} bytes", out.len());
            }
            assert!(out.len() <= 65535);
            // Every reply must be a well-formed response to the same id.
            let msg = Message::from_vec(&out).expect("our reply parses");
            assert_eq!(&out[..2], &packet[..2], "the id is echoed");
            assert!(out[2] & 0x80 != 0, "QR is set");
            drop(msg);
        }
        // Only a packet too short for a header, or a response (QR=1), is dropped silently.
        Answered::Drop => assert!(packet.len() < 12 || packet[2] & 0x80 != 0),
        Answered::Forward => {}
    }
});
