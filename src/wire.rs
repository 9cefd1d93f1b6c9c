//! DNS wire format on the query path: parse a query without allocating, encode a compact response.
//!
//! The parser borrows the packet and only builds the hickory [`Name`] of the question (inline for
//! names up to 32 octets). The encoder writes into a caller-provided buffer, compresses names the
//! way NSD does (the first answer owner becomes a pointer to the question at offset 12), and never
//! panics: a record it cannot encode turns the reply into SERVFAIL rather than a malformed packet.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};

/// We never send a UDP reply larger than this, whatever the client offers (the DNS flag day 2020
/// value: fits the minimum IPv6 MTU without fragmentation).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// The classic UDP limit for clients without EDNS (RFC 1035 §4.2.1).
const CLASSIC_UDP_LIMIT: usize = 512;
const HEADER_LEN: usize = 12;
const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;
const TYPE_OPT: u16 = 41;
/// RFC 8914 Extended DNS Error option code.
const EDNS_OPTION_EDE: u16 = 15;
/// Fixed part of an OPT record: root owner (1), type, class, TTL, RDLENGTH.
const OPT_FIXED_LEN: usize = 11;

/// The EDNS(0) parameters a query carried in its OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The requestor's UDP payload size, as sent (may be below 512; [`udp_limit`] clamps it).
    pub udp_payload: u16,
    /// EDNS version; anything but 0 deserves BADVERS.
    pub version: u8,
    /// The DO bit (RFC 3225).
    pub dnssec_ok: bool,
}

/// A parsed single-question query, borrowing the packet it came from.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub id: u16,
    pub opcode: u8,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    /// As sent, case preserved (hickory `Name` compares case-insensitively).
    pub name: Name,
    pub qtype: RecordType,
    pub qclass: DNSClass,
    /// The raw question section bytes (name, type, class) exactly as sent, echoed byte for byte.
    pub question: &'a [u8],
    pub edns: Option<Edns>,
}

/// Why a packet could not be parsed as a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than a header, or QR already set (a response): never answer it (no reflection).
    Drop,
    /// The header is readable but the rest is not a valid single-question query: answer with this
    /// rcode (FORMERR; NOTIMP when the opcode is not QUERY and the rest can't be parsed), header only.
    Reply {
        id: u16,
        opcode: u8,
        recursion_desired: bool,
        rcode: ResponseCode,
    },
}

/// What the server decided; the encoder adds nothing of its own but flags and OPT.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// Extended rcodes (BADVERS=16) go into the OPT record's upper bits.
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: &'a [Record],
    pub authority: &'a [Record],
    pub additional: &'a [Record],
    /// RFC 8914 Extended DNS Error; only sent when the query had EDNS.
    pub ede: Option<(u16, &'a str)>,
}

impl Reply<'_> {
    /// A reply with no records, for rcode-only answers (NXDOMAIN without SOA, REFUSED, ...).
    pub fn empty(rcode: ResponseCode) -> Self {
        Reply {
            rcode,
            authoritative: false,
            answers: &[],
            authority: &[],
            additional: &[],
            ede: None,
        }
    }
}

/// Reads a big-endian u16 at `pos`, if the packet is long enough.
fn read_u16(packet: &[u8], pos: usize) -> Option<u16> {
    match packet.get(pos..pos.checked_add(2)?) {
        Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }
}

/// Parses a query. Allocation-free apart from the question [`Name`] (heap only past 32 octets).
pub fn parse_query(packet: &[u8]) -> Result<Query<'_>, ParseError> {
    if packet.len() < HEADER_LEN {
        return Err(ParseError::Drop);
    }
    let flags1 = packet[2];
    let flags2 = packet[3];
    if flags1 & 0x80 != 0 {
        return Err(ParseError::Drop);
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let opcode = (flags1 >> 3) & 0x0F;
    let recursion_desired = flags1 & 0x01 != 0;
    let checking_disabled = flags2 & 0x10 != 0;
    let reject = || ParseError::Reply {
        id,
        opcode,
        recursion_desired,
        rcode: if opcode == 0 {
            ResponseCode::FormErr
        } else {
            ResponseCode::NotImp
        },
    };

    let qdcount = u16::from_be_bytes([packet[4], packet[5]]);
    let ancount = u16::from_be_bytes([packet[6], packet[7]]);
    let nscount = u16::from_be_bytes([packet[8], packet[9]]);
    let arcount = u16::from_be_bytes([packet[10], packet[11]]);
    if qdcount != 1 {
        return Err(reject());
    }

    // Question name: plain labels only (nothing precedes it that a pointer could legitimately
    // reference), within the RFC 1035 length limits.
    let mut pos = HEADER_LEN;
    loop {
        let len = *packet.get(pos).ok_or_else(reject)? as usize;
        if len == 0 {
            pos += 1;
            break;
        }
        if len > MAX_LABEL_LEN {
            // Pointers (0xC0) and the reserved 0x40/0x80 label types alike.
            return Err(reject());
        }
        pos += 1 + len;
        if pos > packet.len() || pos - HEADER_LEN + 1 > MAX_NAME_LEN {
            return Err(reject());
        }
    }
    let name_end = pos;
    let qtype = read_u16(packet, pos).ok_or_else(reject)?;
    let qclass = read_u16(packet, pos + 2).ok_or_else(reject)?;
    pos += 4;
    let question = &packet[HEADER_LEN..pos];
    let name =
        Name::read(&mut BinDecoder::new(&packet[HEADER_LEN..name_end])).map_err(|_| reject())?;

    // Answer and authority sections have no business in a query, but are legal: skip them.
    for _ in 0..u32::from(ancount) + u32::from(nscount) {
        pos = skip_record(packet, pos).ok_or_else(reject)?.end;
    }
    let mut edns = None;
    for _ in 0..arcount {
        let rr = skip_record(packet, pos).ok_or_else(reject)?;
        if rr.rtype == TYPE_OPT {
            // RFC 6891 §6.1.1: one OPT at most, owned by the root.
            if edns.is_some() || rr.owner_end != pos + 1 || packet[pos] != 0 {
                return Err(reject());
            }
            let fixed = rr.owner_end;
            let udp_payload = read_u16(packet, fixed + 2).ok_or_else(reject)?;
            let version = *packet.get(fixed + 5).ok_or_else(reject)?;
            let flags = read_u16(packet, fixed + 6).ok_or_else(reject)?;
            if !options_well_formed(&packet[rr.rdata_start..rr.end]) {
                return Err(reject());
            }
            edns = Some(Edns {
                udp_payload,
                version,
                dnssec_ok: flags & 0x8000 != 0,
            });
        }
        pos = rr.end;
    }
    // Trailing bytes after the last record are tolerated, as most servers do.

    Ok(Query {
        id,
        opcode,
        recursion_desired,
        checking_disabled,
        name,
        qtype: RecordType::from(qtype),
        qclass: DNSClass::from(qclass),
        question,
        edns,
    })
}

/// Where a skipped resource record's parts lie in the packet.
struct SkippedRecord {
    owner_end: usize,
    rtype: u16,
    rdata_start: usize,
    end: usize,
}

/// Skips one resource record starting at `pos`; `None` if it runs past the packet or uses a
/// reserved label type.
fn skip_record(packet: &[u8], pos: usize) -> Option<SkippedRecord> {
    let owner_end = skip_name(packet, pos)?;
    let rtype = read_u16(packet, owner_end)?;
    let rdlength = read_u16(packet, owner_end + 8)? as usize;
    let rdata_start = owner_end + 10;
    let end = rdata_start + rdlength;
    if end > packet.len() {
        return None;
    }
    Some(SkippedRecord {
        owner_end,
        rtype,
        rdata_start,
        end,
    })
}

/// Skips a possibly compressed name without following pointers (a pointer ends the name), so
/// pointer loops cannot trap it; every step advances, so it is bounded by the packet length.
fn skip_name(packet: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *packet.get(pos)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => pos += 1 + len as usize,
            0xC0 => {
                packet.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
}

/// Checks that OPT RDATA is a clean sequence of {code, length, data} options.
fn options_well_formed(mut rdata: &[u8]) -> bool {
    while !rdata.is_empty() {
        let Some(len) = read_u16(rdata, 2) else {
            return false;
        };
        let Some(rest) = rdata.get(4 + len as usize..) else {
            return false;
        };
        rdata = rest;
    }
    true
}

/// The largest response the client may receive over UDP: 512 without EDNS, else
/// clamp(client payload, 512, 1232).
pub fn udp_limit(query: &Query<'_>) -> usize {
    match query.edns {
        None => CLASSIC_UDP_LIMIT,
        Some(edns) => {
            usize::from(edns.udp_payload).clamp(CLASSIC_UDP_LIMIT, MAX_UDP_PAYLOAD.into())
        }
    }
}

/// A record or name that cannot be put on the wire (label too long, RDATA over 64 KiB, ...).
#[derive(Debug)]
struct Unencodable;

/// Maximum remembered name positions for compression; the rest are written uncompressed.
const MAX_COMPRESSION_TARGETS: usize = 64;
/// Pointers carry 14 bits of offset.
const MAX_POINTER_OFFSET: usize = 0x3FFF;

/// Positions of names (and their suffixes) already in the message, with the number of labels
/// from that position to the root so a candidate is only compared when it can match.
struct Compressor {
    targets: [(u16, u8); MAX_COMPRESSION_TARGETS],
    len: usize,
}

impl Compressor {
    fn new() -> Self {
        Self {
            targets: [(0, 0); MAX_COMPRESSION_TARGETS],
            len: 0,
        }
    }

    fn remember(&mut self, offset: usize, labels: usize) {
        if self.len >= MAX_COMPRESSION_TARGETS || offset > MAX_POINTER_OFFSET {
            return;
        }
        // Both conversions hold (offset <= 0x3FFF, a name has at most 127 labels).
        if let (Ok(offset), Ok(labels)) = (u16::try_from(offset), u8::try_from(labels)) {
            self.targets[self.len] = (offset, labels);
            self.len += 1;
        }
    }

    /// Registers the uncompressed name written at `start` (the echoed question); a name that is
    /// not plain labels ending in the root (only possible in a hand-built [`Query`]) is skipped.
    fn remember_raw(&mut self, msg: &[u8], start: usize) {
        let mut labels = 0;
        let mut pos = start;
        loop {
            match msg.get(pos) {
                Some(0) => break,
                Some(&len) if usize::from(len) <= MAX_LABEL_LEN => {
                    labels += 1;
                    pos += 1 + usize::from(len);
                }
                _ => return,
            }
        }
        let mut pos = start;
        for remaining in (1..=labels).rev() {
            self.remember(pos, remaining);
            pos += 1 + usize::from(msg.get(pos).copied().unwrap_or(0));
        }
    }

    /// Finds an earlier name in `msg` equal (ASCII case-insensitively) to the plain, uncompressed
    /// name at `needle` in the same buffer, which has `count` labels.
    /// The needle runs to the end of `msg`.
    fn find(&self, msg: &[u8], needle: usize, count: usize) -> Option<u16> {
        let wanted = msg.get(needle..)?;
        self.targets[..self.len]
            .iter()
            .find(|&&(offset, labels)| {
                let offset = usize::from(offset);
                usize::from(labels) == count
                    // One exact comparison settles the usual case (the same name, uncompressed,
                    // same case); equal bytes parse as equal labels since both start at a label.
                    && (msg.get(offset..offset + wanted.len()) == Some(wanted)
                        || same_name(msg, offset, needle))
            })
            .map(|&(offset, _)| offset)
    }
}

/// Compares the name at `pos` in `msg` (which we wrote: pointers only backwards) with the plain
/// name at `needle`, label by label.
fn same_name(msg: &[u8], mut pos: usize, mut needle: usize) -> bool {
    // Bound pointer chasing even though our own output never loops.
    let mut hops = 0;
    loop {
        let Some(&b) = msg.get(pos) else {
            return false;
        };
        if b & 0xC0 == 0xC0 {
            hops += 1;
            match read_u16(msg, pos) {
                Some(ptr) if hops <= 128 => pos = usize::from(ptr & 0x3FFF),
                _ => return false,
            }
            continue;
        }
        let len = usize::from(b);
        if msg.get(needle) != Some(&b) {
            return false;
        }
        if len == 0 {
            return true;
        }
        match (
            msg.get(pos + 1..pos + 1 + len),
            msg.get(needle + 1..needle + 1 + len),
        ) {
            // Exact comparison first: it is vectorised, and the usual case.
            (Some(a), Some(b)) if a == b || a.eq_ignore_ascii_case(b) => {}
            _ => return false,
        }
        pos += 1 + len;
        needle += 1 + len;
    }
}

/// Writes `name`, replacing its longest already-written suffix by a pointer when `compressor`
/// is given (and remembering its new suffixes); otherwise uncompressed.
fn write_name(
    out: &mut Vec<u8>,
    name: &Name,
    compressor: Option<&mut Compressor>,
) -> Result<(), Unencodable> {
    // Write it whole first: the bytes in `out` are then the needle for the suffix search, so
    // the name's labels are walked once.
    let start = out.len();
    let mut count = 0;
    for label in name.iter() {
        let len = match u8::try_from(label.len()) {
            Ok(len) if usize::from(len) <= MAX_LABEL_LEN => len,
            _ => return Err(Unencodable),
        };
        out.push(len);
        out.extend_from_slice(label);
        count += 1;
    }
    out.push(0);
    if out.len() - start > MAX_NAME_LEN {
        return Err(Unencodable);
    }
    let Some(comp) = compressor else {
        return Ok(());
    };
    let mut pos = start;
    for remaining in (1..=count).rev() {
        if let Some(offset) = comp.find(out, pos, remaining) {
            out.truncate(pos);
            out.extend_from_slice(&(0xC000 | offset).to_be_bytes());
            return Ok(());
        }
        // Its own entries never match a later, shorter suffix: the label counts differ.
        comp.remember(pos, remaining);
        pos += 1 + usize::from(out[pos]);
    }
    Ok(())
}

/// Writes one resource record. Names are compressed in the owner and in the RDATA of the RFC 1035
/// types (RFC 3597 §4); everything else is written uncompressed.
fn write_record(
    out: &mut Vec<u8>,
    record: &Record,
    comp: &mut Compressor,
) -> Result<(), Unencodable> {
    write_name(out, &record.name, Some(comp))?;
    out.extend_from_slice(&u16::from(record.record_type()).to_be_bytes());
    out.extend_from_slice(&u16::from(record.dns_class).to_be_bytes());
    out.extend_from_slice(&record.ttl.to_be_bytes());
    let rdlength_at = out.len();
    out.extend_from_slice(&[0, 0]);
    match &record.data {
        RData::A(a) => out.extend_from_slice(&a.0.octets()),
        RData::AAAA(aaaa) => out.extend_from_slice(&aaaa.0.octets()),
        RData::CNAME(name) => write_name(out, &name.0, Some(comp))?,
        RData::NS(name) => write_name(out, &name.0, Some(comp))?,
        RData::PTR(name) => write_name(out, &name.0, Some(comp))?,
        RData::MX(mx) => {
            out.extend_from_slice(&mx.preference.to_be_bytes());
            write_name(out, &mx.exchange, Some(comp))?;
        }
        RData::SOA(soa) => {
            write_name(out, &soa.mname, Some(comp))?;
            write_name(out, &soa.rname, Some(comp))?;
            out.extend_from_slice(&soa.serial.to_be_bytes());
            out.extend_from_slice(&soa.refresh.to_be_bytes());
            out.extend_from_slice(&soa.retry.to_be_bytes());
            out.extend_from_slice(&soa.expire.to_be_bytes());
            out.extend_from_slice(&soa.minimum.to_be_bytes());
        }
        RData::SRV(srv) => {
            // RFC 2782: the target must not be compressed.
            out.extend_from_slice(&srv.priority.to_be_bytes());
            out.extend_from_slice(&srv.weight.to_be_bytes());
            out.extend_from_slice(&srv.port.to_be_bytes());
            write_name(out, &srv.target, None)?;
        }
        other => {
            let offset = u32::try_from(out.len()).map_err(|_| Unencodable)?;
            let mut encoder = BinEncoder::with_offset(out, offset);
            encoder.set_name_encoding(NameEncoding::Uncompressed);
            other.emit(&mut encoder).map_err(|_| Unencodable)?;
        }
    }
    let rdlength = u16::try_from(out.len() - rdlength_at - 2).map_err(|_| Unencodable)?;
    out[rdlength_at..rdlength_at + 2].copy_from_slice(&rdlength.to_be_bytes());
    Ok(())
}

/// Writes a section, stopping (returning `Ok(false)`) as soon as the message plus `reserve`
/// would exceed `limit`.
fn write_section(
    out: &mut Vec<u8>,
    records: &[Record],
    comp: &mut Compressor,
    limit: usize,
    reserve: usize,
) -> Result<bool, Unencodable> {
    for record in records {
        write_record(out, record, comp)?;
        if out.len() + reserve > limit {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Appends the full response to `out` (cleared first).
///
/// Header: id, opcode, RD and CD copied from the query; QR and RA set; AA from `reply`; TC when
/// truncated. Question echoed byte for byte. When the query had EDNS, an OPT record with payload
/// 1232, version 0, the DO bit copied from the query (RFC 3225), plus EDE if any. If the answer and
/// authority sections would exceed `limit`, all records are dropped and TC set (question and OPT
/// kept); if only the additional section does not fit, it alone is dropped, without TC
/// (RFC 2181 §9). A record that cannot be encoded at all turns the reply into SERVFAIL.
pub fn encode_reply(query: &Query<'_>, reply: &Reply<'_>, limit: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.extend_from_slice(query.question);
    let question_end = out.len();
    let limit = limit.min(usize::from(u16::MAX));

    let mut ede = reply.ede.filter(|_| query.edns.is_some());
    let opt_len = |ede: Option<(u16, &str)>| match (query.edns, ede) {
        (None, _) => 0,
        (Some(_), None) => OPT_FIXED_LEN,
        (Some(_), Some((_, text))) => OPT_FIXED_LEN + 6 + text.len(),
    };
    // An EDE text too long to fit even an empty reply is the one thing we give up.
    // (With limit <= 65535 this also keeps the option length within u16.)
    if question_end + opt_len(ede) > limit {
        ede = None;
    }
    let reserve = opt_len(ede);

    let mut rcode = reply.rcode;
    let mut authoritative = reply.authoritative;
    let mut truncated = false;
    let mut counts = [0u16; 3];
    let mut comp = Compressor::new();
    comp.remember_raw(out, HEADER_LEN);

    let written = (|| -> Result<(), Unencodable> {
        if !write_section(out, reply.answers, &mut comp, limit, reserve)?
            || !write_section(out, reply.authority, &mut comp, limit, reserve)?
        {
            truncated = true;
            return Ok(());
        }
        let additional_start = out.len();
        if write_section(out, reply.additional, &mut comp, limit, reserve)? {
            counts[2] = u16::try_from(reply.additional.len()).map_err(|_| Unencodable)?;
        } else {
            out.truncate(additional_start);
        }
        counts[0] = u16::try_from(reply.answers.len()).map_err(|_| Unencodable)?;
        counts[1] = u16::try_from(reply.authority.len()).map_err(|_| Unencodable)?;
        Ok(())
    })();
    if written.is_err() {
        rcode = ResponseCode::ServFail;
        authoritative = false;
        truncated = false;
    }
    if written.is_err() || truncated {
        out.truncate(question_end);
        counts = [0; 3];
    }

    if let Some(edns) = query.edns {
        write_opt(out, rcode, edns.dnssec_ok, ede);
        counts[2] += 1;
    }

    let flags = (authoritative, truncated, rcode);
    write_header(&mut out[..HEADER_LEN], query, flags, counts);
}

/// The reply header: id, opcode, RD and CD from the query; QR and RA set; AA, TC and rcode as given.
fn write_header(
    header: &mut [u8],
    query: &Query<'_>,
    (authoritative, truncated, rcode): (bool, bool, ResponseCode),
    counts: [u16; 3],
) {
    header[0..2].copy_from_slice(&query.id.to_be_bytes());
    header[2] = 0x80
        | (query.opcode & 0x0F) << 3
        | u8::from(authoritative) << 2
        | u8::from(truncated) << 1
        | u8::from(query.recursion_desired);
    header[3] = 0x80 | u8::from(query.checking_disabled) << 4 | rcode.low();
    header[4..6].copy_from_slice(&1u16.to_be_bytes());
    header[6..8].copy_from_slice(&counts[0].to_be_bytes());
    header[8..10].copy_from_slice(&counts[1].to_be_bytes());
    header[10..12].copy_from_slice(&counts[2].to_be_bytes());
}

/// One SOA record encoded once, for the negative answers that carry it: an NXDOMAIN or NODATA for a name under the
/// SOA's owner is the question, a pointer to the owner's suffix of it, and these bytes. Negative answers are most of
/// what no table can prepare (any name under a zone), and the SOA's three names were most of their encoding.
#[derive(Debug, Clone)]
pub struct NegativeSoa {
    /// The record this encodes (its owner is not part of the bytes).
    record: Record,
    /// Type, class, TTL, RDLENGTH and RDATA, the two names in it uncompressed (no offsets to patch per reply).
    fixed: Box<[u8]>,
}

impl NegativeSoa {
    /// `None` when `soa` is not an SOA record or its names cannot be encoded.
    pub fn new(soa: &Record) -> Option<Self> {
        let RData::SOA(data) = &soa.data else {
            return None;
        };
        let mut out = Vec::new();
        out.extend_from_slice(&u16::from(RecordType::SOA).to_be_bytes());
        out.extend_from_slice(&u16::from(soa.dns_class).to_be_bytes());
        out.extend_from_slice(&soa.ttl.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        write_name(&mut out, &data.mname, None).ok()?;
        write_name(&mut out, &data.rname, None).ok()?;
        out.extend_from_slice(&data.serial.to_be_bytes());
        for n in [data.refresh, data.retry, data.expire] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&data.minimum.to_be_bytes());
        let rdlength = u16::try_from(out.len() - 10).ok()?;
        out[8..10].copy_from_slice(&rdlength.to_be_bytes());
        Some(Self {
            record: soa.clone(),
            fixed: out.into(),
        })
    }

    /// Writes the reply for `query` into `out` when `reply` is a negative answer with exactly this SOA's data in its
    /// authority section, owned by the question name or one of its parents, and it fits `limit`. `false` otherwise
    /// (`out` unspecified): [`encode_reply`] answers. The bytes are those [`encode_reply`] writes, but for the
    /// SOA's own names, which are not compressed.
    pub fn encode(
        &self,
        query: &Query<'_>,
        reply: &Reply<'_>,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        let [soa] = reply.authority else {
            return false;
        };
        if !reply.answers.is_empty()
            || !reply.additional.is_empty()
            || reply.ede.is_some()
            || reply.rcode.high() != 0
            || soa.ttl != self.record.ttl
            || soa.dns_class != self.record.dns_class
            || !same_soa(&soa.data, &self.record.data)
        {
            return false;
        }
        let Some(owner_at) = suffix_offset(query.question, &soa.name) else {
            return false;
        };
        let opt_len = if query.edns.is_some() {
            OPT_FIXED_LEN
        } else {
            0
        };
        if HEADER_LEN + query.question.len() + 2 + self.fixed.len() + opt_len > limit {
            return false;
        }
        out.clear();
        out.extend_from_slice(&[0; HEADER_LEN]);
        out.extend_from_slice(query.question);
        out.extend_from_slice(&(0xC000 | (HEADER_LEN + owner_at) as u16).to_be_bytes());
        out.extend_from_slice(&self.fixed);
        let mut counts = [0, 1, 0];
        if let Some(edns) = query.edns {
            write_opt(out, reply.rcode, edns.dnssec_ok, None);
            counts[2] = 1;
        }
        let flags = (reply.authoritative, false, reply.rcode);
        write_header(&mut out[..HEADER_LEN], query, flags, counts);
        true
    }
}

/// Encodes a reply the server decided itself: from `negative` when it applies, else with [`encode_reply`]. Every
/// local reply goes through here, so a replayed answer has the bytes the full path sends.
pub fn encode_local(
    negative: Option<&NegativeSoa>,
    query: &Query<'_>,
    reply: &Reply<'_>,
    limit: usize,
    out: &mut Vec<u8>,
) {
    if !negative.is_some_and(|soa| soa.encode(query, reply, limit, out)) {
        encode_reply(query, reply, limit, out);
    }
}

/// Where in `question` (plain labels, then type and class) the suffix equal to `name` (ASCII case-insensitively)
/// starts, if `name` is the question name or one of its parents.
fn suffix_offset(question: &[u8], name: &Name) -> Option<usize> {
    let mut wire = [0u8; MAX_NAME_LEN + 1];
    let mut len = 0;
    for label in name.iter() {
        *wire.get_mut(len)? = u8::try_from(label.len()).ok()?;
        wire.get_mut(len + 1..len + 1 + label.len())?
            .copy_from_slice(label);
        len += 1 + label.len();
    }
    let wire = wire.get(..=len)?;
    let qname_len = question.len().checked_sub(4)?;
    let mut at = 0;
    while qname_len.saturating_sub(at) > wire.len() {
        match usize::from(*question.get(at)?) {
            0 => return None,
            label => at += 1 + label,
        }
    }
    // Length octets are below 64, so a case-insensitive comparison compares them exactly.
    question
        .get(at..qname_len)?
        .eq_ignore_ascii_case(wire)
        .then_some(at)
}

/// Whether `a` has `b`'s numbers and names of `b`'s shape (label count and length). Comparing hickory names label
/// by label cost more than encoding them, and the one SOA the engine gives every negative answer
/// (`engine::negative_soa`) is what this is built from; the property test compares served authority sections with
/// the engine's.
fn same_soa(a: &RData, b: &RData) -> bool {
    let shape = |n: &Name| (n.len(), n.num_labels(), n.is_fqdn());
    match (a, b) {
        (RData::SOA(a), RData::SOA(b)) => {
            (a.serial, a.refresh, a.retry, a.expire, a.minimum)
                == (b.serial, b.refresh, b.retry, b.expire, b.minimum)
                && shape(&a.mname) == shape(&b.mname)
                && shape(&a.rname) == shape(&b.rname)
        }
        _ => false,
    }
}

/// Writes our OPT record: payload 1232, version 0, the upper rcode bits, DO as asked, EDE if any.
fn write_opt(out: &mut Vec<u8>, rcode: ResponseCode, dnssec_ok: bool, ede: Option<(u16, &str)>) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
    out.extend_from_slice(&[rcode.high(), 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    match ede {
        None => out.extend_from_slice(&[0, 0]),
        Some((code, text)) => {
            // Lengths were checked by the caller to fit in u16.
            let option_len = u16::try_from(2 + text.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&(option_len.saturating_add(4)).to_be_bytes());
            out.extend_from_slice(&EDNS_OPTION_EDE.to_be_bytes());
            out.extend_from_slice(&option_len.to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// A reply encoded once for one question (name and type), replayed for every query that asks it:
/// only the id, the flags the client chose, the question as sent and the OPT record change per query.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The answer and authority sections, compressed against a question at offset 12.
    body: Box<[u8]>,
    counts: [u16; 2],
    rcode_low: u8,
    authoritative: bool,
}

impl Prepared {
    /// Encodes `reply` for `query` once, as [`encode_local`] with `negative` would. `None` for what can't be
    /// replayed: extended rcodes, additional records, EDE.
    pub fn new(
        query: &Query<'_>,
        reply: &Reply<'_>,
        negative: Option<&NegativeSoa>,
    ) -> Option<Self> {
        if reply.rcode.high() != 0
            || !reply.additional.is_empty()
            || reply.ede.is_some()
            || query.edns.is_some()
        {
            return None;
        }
        let mut out = Vec::new();
        encode_local(negative, query, reply, usize::from(u16::MAX), &mut out);
        let header = out.get(..HEADER_LEN)?;
        if header[2] & 0x02 != 0 || header[3] & 0x0F != reply.rcode.low() {
            return None;
        }
        let counts = [
            u16::from_be_bytes([header[6], header[7]]),
            u16::from_be_bytes([header[8], header[9]]),
        ];
        Some(Self {
            body: out.get(HEADER_LEN + query.question.len()..)?.into(),
            counts,
            rcode_low: reply.rcode.low(),
            authoritative: reply.authoritative,
        })
    }

    /// Bytes a reply with this body takes beyond the question (without OPT).
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// The answer and authority sections as encoded (names may point into the question at offset 12).
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// What the hot path needs from a query, read without building a [`Name`]: a plain QUERY with exactly one
/// uncompressed question and at most an EDNS version 0 OPT record. Anything else returns `None` and takes the
/// full path, which also produces every error response.
#[derive(Debug, Clone, Copy)]
pub struct Peek {
    pub id: u16,
    flags1: u8,
    flags2: u8,
    /// End of the question section in the packet.
    question_end: usize,
    pub qtype: u16,
    pub edns: Option<Edns>,
}

impl Peek {
    /// The UDP size limit for the reply (see [`udp_limit`]).
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            None => CLASSIC_UDP_LIMIT,
            Some(e) => usize::from(
                e.udp_payload
                    .clamp(CLASSIC_UDP_LIMIT as u16, MAX_UDP_PAYLOAD),
            ),
        }
    }
}

/// Reads the header and question of `packet`, writing the lowercased question name (wire form, with its final
/// root label) into `lower`. Class must be IN.
pub fn peek(packet: &[u8], lower: &mut Vec<u8>) -> Option<Peek> {
    let header = packet.get(..HEADER_LEN)?;
    let (flags1, flags2) = (header[2], header[3]);
    // QR clear, opcode QUERY; one question, no answer or authority records, at most one additional.
    if flags1 & 0xF8 != 0
        || header[4..10] != [0, 1, 0, 0, 0, 0]
        || header[10] != 0
        || header[11] > 1
    {
        return None;
    }
    lower.clear();
    let mut pos = HEADER_LEN;
    loop {
        let len = usize::from(*packet.get(pos)?);
        if len > MAX_LABEL_LEN {
            return None;
        }
        let label = packet.get(pos..=pos + len)?;
        lower.extend(label.iter().map(u8::to_ascii_lowercase));
        pos += len + 1;
        if lower.len() > MAX_NAME_LEN {
            return None;
        }
        if len == 0 {
            break;
        }
    }
    let qtype = read_u16(packet, pos)?;
    if read_u16(packet, pos + 2)? != 1 {
        return None;
    }
    let question_end = pos + 4;
    let edns = if header[11] == 1 {
        // OPT: root owner, type 41, class = payload, TTL = extended rcode, version, flags; rdata skipped whole.
        let opt = packet.get(question_end..question_end + OPT_FIXED_LEN)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT || opt[6] != 0 {
            return None;
        }
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        if question_end + OPT_FIXED_LEN + rdlen != packet.len() {
            return None;
        }
        Some(Edns {
            udp_payload: u16::from_be_bytes([opt[3], opt[4]]),
            version: opt[6],
            dnssec_ok: opt[7] & 0x80 != 0,
        })
    } else {
        if question_end != packet.len() {
            return None;
        }
        None
    };
    Some(Peek {
        id: u16::from_be_bytes([header[0], header[1]]),
        flags1,
        flags2,
        question_end,
        qtype,
        edns,
    })
}

/// Writes the reply for `peek` from a prepared body into `out`; `false` (and `out` unspecified) when it would exceed
/// `limit`, in which case the full path answers (with TC).
pub fn encode_prepared(
    packet: &[u8],
    peek: &Peek,
    prepared: &Prepared,
    limit: usize,
    out: &mut Vec<u8>,
) -> bool {
    let opt_len = if peek.edns.is_some() {
        OPT_FIXED_LEN
    } else {
        0
    };
    if peek.question_end + prepared.body.len() + opt_len > limit {
        return false;
    }
    out.clear();
    out.extend_from_slice(&peek.id.to_be_bytes());
    out.push(0x80 | u8::from(prepared.authoritative) << 2 | (peek.flags1 & 0x01));
    out.push(0x80 | (peek.flags2 & 0x10) | prepared.rcode_low);
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&prepared.counts[0].to_be_bytes());
    out.extend_from_slice(&prepared.counts[1].to_be_bytes());
    out.extend_from_slice(&[0, u8::from(peek.edns.is_some())]);
    out.extend_from_slice(&packet[HEADER_LEN..peek.question_end]);
    out.extend_from_slice(&prepared.body);
    if let Some(edns) = peek.edns {
        write_opt(out, ResponseCode::NoError, edns.dnssec_ok, None);
    }
    true
}

/// A header-only response (QDCOUNT 0) for [`ParseError::Reply`] and for NOTIMP: id, opcode and RD
/// echoed, QR set, no other flags (AA, TC, AD, CD, Z cleared).
pub fn encode_header_only(
    id: u16,
    opcode: u8,
    recursion_desired: bool,
    rcode: ResponseCode,
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.push(0x80 | (opcode & 0x0F) << 3 | u8::from(recursion_desired));
    out.push(rcode.low());
    out.extend_from_slice(&[0; 8]);
}

/// Builds a recursive query (RD set) with EDNS payload 1232 and the DO bit as asked, into `out`
/// (cleared first). The name is written as given, case preserved. A name that cannot be encoded
/// (never the case for a valid [`Name`]) yields a header-only packet, which servers reject.
pub fn build_query(id: u16, name: &Name, qtype: RecordType, dnssec_ok: bool, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    if write_name(out, name, None).is_err() {
        out.truncate(HEADER_LEN);
        out[5] = 0;
        out[11] = 0;
        return;
    }
    out.extend_from_slice(&u16::from(qtype).to_be_bytes());
    out.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
    write_opt(out, ResponseCode::NoError, dnssec_ok, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode};
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::rr::rdata::{A, CNAME, MX, NS, PTR, SOA, SRV, TXT};
    use std::net::Ipv4Addr;
    use std::str::FromStr;

    const EC2_NAME: &str = "ip-10-0-0-12.ec2.internal.";

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn a(owner: &str, ip: [u8; 4]) -> Record {
        Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::from(ip))))
    }

    /// A raw query with no EDNS, RD set.
    fn raw_query(qname: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in qname.trim_end_matches('.').split('.') {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p
    }

    /// Appends an OPT record (and bumps ARCOUNT).
    fn add_opt(p: &mut Vec<u8>, payload: u16, version: u8, dnssec_ok: bool) {
        p.push(0);
        p.extend_from_slice(&41u16.to_be_bytes());
        p.extend_from_slice(&payload.to_be_bytes());
        p.extend_from_slice(&[0, version, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        p[11] += 1;
    }

    fn reply(rcode: ResponseCode, answers: &[Record]) -> Reply<'_> {
        Reply {
            answers,
            ..Reply::empty(rcode)
        }
    }

    fn formerr(p: &[u8]) -> ParseError {
        ParseError::Reply {
            id: u16::from_be_bytes([p[0], p[1]]),
            opcode: (p[2] >> 3) & 0x0F,
            recursion_desired: p[2] & 1 != 0,
            rcode: ResponseCode::FormErr,
        }
    }

    #[test]
    fn parses_a_simple_query() {
        let p = raw_query("Example.COM", 1);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.opcode, 0);
        assert!(q.recursion_desired);
        assert!(!q.checking_disabled);
        assert_eq!(q.name, name("example.com."));
        assert_eq!(q.name.to_ascii(), "Example.COM.");
        assert_eq!(q.qtype, RecordType::A);
        assert_eq!(q.qclass, DNSClass::IN);
        assert_eq!(q.question, &p[12..]);
        assert_eq!(q.edns, None);
        assert_eq!(udp_limit(&q), 512);
    }

    #[test]
    fn parses_build_query_output() {
        let mut p = Vec::new();
        // (Name::from_str folds case; from_ascii keeps it.)
        let mixed = Name::from_ascii("Foo.Example.").unwrap();
        build_query(7, &mixed, RecordType::AAAA, true, &mut p);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.id, 7);
        assert!(q.recursion_desired);
        assert_eq!(q.name.to_ascii(), "Foo.Example.");
        assert_eq!(q.qtype, RecordType::AAAA);
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_payload: 1232,
                version: 0,
                dnssec_ok: true
            })
        );
        let m = Message::from_vec(&p).unwrap();
        assert_eq!(m.metadata.message_type, MessageType::Query);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries[0].query_type, RecordType::AAAA);
        let edns = m.edns.unwrap();
        assert_eq!(edns.max_payload(), 1232);
        assert!(edns.flags().dnssec_ok);
    }

    #[test]
    fn udp_limit_clamps_the_offer() {
        for (offer, want) in [
            (0, 512),
            (511, 512),
            (1000, 1000),
            (1232, 1232),
            (4096, 1232),
            (65535, 1232),
        ] {
            let mut p = raw_query("a.", 1);
            add_opt(&mut p, offer, 0, false);
            assert_eq!(udp_limit(&parse_query(&p).unwrap()), want, "offer {offer}");
        }
    }

    #[test]
    fn ec2_a_answer_is_nsd_sized() {
        // 27 octets on the wire: 1+12 + 1+3 + 1+8 + 1.
        let mut p = raw_query("ip-10-0-0-12.ec2.internal", 1);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.question.len(), 27 + 4);
        let answers = [a(EC2_NAME, [10, 0, 0, 12]), a(EC2_NAME, [10, 0, 0, 13])];
        let mut out = Vec::new();
        encode_reply(
            &q,
            &reply(ResponseCode::NoError, &answers),
            udp_limit(&q),
            &mut out,
        );
        assert_eq!(out.len(), 12 + 31 + 2 * (2 + 10 + 4));
        // Both owners are pointers to the question.
        assert_eq!(&out[43..45], &[0xC0, 0x0C]);
        assert_eq!(&out[59..61], &[0xC0, 0x0C]);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.recursion_available);
        assert!(m.metadata.recursion_desired);
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers, answers);

        // With EDNS: plus an 11-octet OPT record, nothing else.
        add_opt(&mut p, 4096, 0, false);
        let q = parse_query(&p).unwrap();
        encode_reply(
            &q,
            &reply(ResponseCode::NoError, &answers),
            udp_limit(&q),
            &mut out,
        );
        assert_eq!(out.len(), 12 + 31 + 2 * 16 + 11);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.answers, answers);
        assert_eq!(m.edns.unwrap().max_payload(), 1232);
    }

    #[test]
    fn question_case_is_echoed_byte_for_byte() {
        let p = raw_query("Ip-10-0-0-12.EC2.Internal", 1);
        let q = parse_query(&p).unwrap();
        let answers = [a(EC2_NAME, [10, 0, 0, 12])];
        let mut out = Vec::new();
        encode_reply(&q, &reply(ResponseCode::NoError, &answers), 512, &mut out);
        assert_eq!(&out[12..12 + q.question.len()], q.question);
        assert_eq!(&out[12 + q.question.len()..][..2], &[0xC0, 0x0C]);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.queries[0].name().to_ascii(), "Ip-10-0-0-12.EC2.Internal.");
    }

    #[test]
    fn header_flags_and_id_are_copied() {
        let mut p = raw_query("x.example", 16);
        p[2] = 0x00; // RD clear
        p[3] = 0x10 | 0x20 | 0x40; // CD, AD and Z set by the client
        let q = parse_query(&p).unwrap();
        assert!(q.checking_disabled);
        let mut out = Vec::new();
        let r = Reply {
            authoritative: true,
            ..Reply::empty(ResponseCode::NXDomain)
        };
        encode_reply(&q, &r, 512, &mut out);
        assert_eq!(&out[0..2], &[0x12, 0x34]);
        assert_eq!(out[2], 0x80 | 0x04);
        assert_eq!(out[3], 0x80 | 0x10 | 3);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authoritative);
        assert!(m.metadata.checking_disabled);
        assert!(!m.metadata.authentic_data);
    }

    fn route53_soa(owner: &str) -> Record {
        crate::engine::r53_soa(&name(owner))
    }

    #[test]
    fn negative_soa_reply_decodes_as_the_general_encoder_s() {
        let template = NegativeSoa::new(&route53_soa(".")).unwrap();
        let cases = [
            (
                "nx1.ec2.us-east-1.amazonaws.com",
                "ec2.us-east-1.amazonaws.com.",
                false,
            ),
            (
                "Nx1.EC2.us-EAST-1.amazonaws.COM",
                "ec2.us-east-1.amazonaws.com.",
                true,
            ),
            (
                "ec2.us-east-1.amazonaws.com",
                "ec2.us-east-1.amazonaws.com.",
                true,
            ),
            ("a.b.c.corp.internal", "corp.internal.", false),
            ("a.b.c.corp.internal", ".", true),
        ];
        for (qname, owner, edns) in cases {
            for (rcode, dnssec_ok) in [
                (ResponseCode::NXDomain, false),
                (ResponseCode::NoError, true),
            ] {
                let mut p = raw_query(qname, 28);
                p[3] = 0x10; // CD
                if edns {
                    add_opt(&mut p, 4096, 0, dnssec_ok);
                }
                let q = parse_query(&p).unwrap();
                let authority = [route53_soa(owner)];
                let r = Reply {
                    authoritative: true,
                    authority: &authority,
                    ..Reply::empty(rcode)
                };
                let (mut general, mut fast) = (Vec::new(), Vec::new());
                encode_reply(&q, &r, 1232, &mut general);
                assert!(template.encode(&q, &r, 1232, &mut fast), "{qname} {owner}");
                assert_eq!(fast[..12], general[..12], "{qname}: header");
                assert_eq!(&fast[12..12 + q.question.len()], q.question);
                let (g, f) = (
                    Message::from_vec(&general).unwrap(),
                    Message::from_vec(&fast).unwrap(),
                );
                assert_eq!(f.authorities, authority, "{qname} {owner}");
                assert_eq!(
                    f.authorities[0].name.to_ascii(),
                    g.authorities[0].name.to_ascii(),
                    "owner in the question's case"
                );
                assert_eq!(f.edns, g.edns);
                assert_eq!(f.queries, g.queries);
            }
        }
    }

    #[test]
    fn negative_soa_declines_what_it_does_not_encode() {
        let template = NegativeSoa::new(&route53_soa(".")).unwrap();
        assert!(NegativeSoa::new(&a("x.", [192, 0, 2, 1])).is_none());
        let p = raw_query("nx.corp.internal", 1);
        let q = parse_query(&p).unwrap();
        let mut out = Vec::new();
        let mut other_ttl = route53_soa("corp.internal.");
        other_ttl.ttl = 60;
        let mut other_data = route53_soa("corp.internal.");
        if let RData::SOA(soa) = &mut other_data.data {
            soa.serial = 2;
        }
        let chain = [Record::from_rdata(
            name("nx.corp.internal."),
            60,
            RData::CNAME(CNAME(name("y.other.internal."))),
        )];
        let declined =
            |why: &str, answers: &[Record], authority: &[Record], ede: Option<(u16, &str)>| {
                let r = Reply {
                    answers,
                    authority,
                    ede,
                    ..Reply::empty(ResponseCode::NXDomain)
                };
                assert!(!template.encode(&q, &r, 512, &mut Vec::new()), "{why}");
            };
        let owner = route53_soa("corp.internal.");
        declined(
            "owner not a parent",
            &[],
            &[route53_soa("other.internal.")],
            None,
        );
        declined(
            "owner longer than the name",
            &[],
            &[route53_soa("a.nx.corp.internal.")],
            None,
        );
        declined(
            "a CNAME in front",
            &chain,
            &[route53_soa("other.internal.")],
            None,
        );
        declined("another TTL", &[], &[other_ttl], None);
        declined("another SOA", &[], &[other_data], None);
        declined(
            "two records",
            &[],
            &[owner.clone(), route53_soa("internal.")],
            None,
        );
        declined("an EDE", &[], &[owner], Some((0, "x")));
        let authority = [route53_soa("corp.internal.")];
        let r = Reply {
            authority: &authority,
            ..Reply::empty(ResponseCode::NXDomain)
        };
        assert!(template.encode(&q, &r, 512, &mut out));
        let fits = out.len();
        assert!(
            !template.encode(&q, &r, fits - 1, &mut out),
            "too long for the limit"
        );
        // Nothing in this question shares a suffix with the SOA's names: both encoders need the same room.
        let mut general = Vec::new();
        encode_reply(&q, &r, fits - 1, &mut general);
        assert_eq!(
            general[2] & 0x02,
            0x02,
            "the general encoder truncates instead"
        );
    }

    #[test]
    fn cname_chain_and_soa_compress_and_round_trip() {
        let p = raw_query("www.corp.example.com", 1);
        let q = parse_query(&p).unwrap();
        let answers = [
            Record::from_rdata(
                name("www.corp.example.com."),
                300,
                RData::CNAME(CNAME(name("lb.corp.example.com."))),
            ),
            a("lb.corp.example.com.", [192, 0, 2, 1]),
        ];
        let authority = [
            Record::from_rdata(
                name("corp.example.com."),
                300,
                RData::SOA(SOA::new(
                    name("ns1.corp.example.com."),
                    name("hostmaster.corp.example.com."),
                    1,
                    7200,
                    900,
                    1_209_600,
                    60,
                )),
            ),
            Record::from_rdata(
                name("corp.example.com."),
                300,
                RData::NS(NS(name("ns1.corp.example.com."))),
            ),
        ];
        let additional = [
            Record::from_rdata(
                name("corp.example.com."),
                300,
                RData::MX(MX::new(10, name("mail.corp.example.com."))),
            ),
            Record::from_rdata(
                name("1.2.0.192.in-addr.arpa."),
                300,
                RData::PTR(PTR(name("lb.corp.example.com."))),
            ),
        ];
        let r = Reply {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers: &answers,
            authority: &authority,
            additional: &additional,
            ede: None,
        };
        let mut out = Vec::new();
        encode_reply(&q, &r, 512, &mut out);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.answers, answers);
        assert_eq!(m.authorities, authority);
        assert_eq!(m.additionals, additional);
        // Smaller than hickory's own encoding of the same message.
        let mut theirs = Message::response(q.id, OpCode::Query);
        theirs.add_query(m.queries[0].clone());
        theirs.add_answers(answers.clone());
        theirs.add_authorities(authority.clone());
        theirs.add_additionals(additional.clone());
        let theirs = theirs.to_vec().unwrap();
        assert!(
            out.len() <= theirs.len(),
            "{} > {}",
            out.len(),
            theirs.len()
        );
        // The CNAME target shares "corp.example.com" with the question: 2-octet label + pointer.
        let cname_rdata = 12 + q.question.len() + 2 + 10;
        assert_eq!(&out[cname_rdata - 2..cname_rdata], &[0, 5]);
    }

    #[test]
    fn srv_target_is_not_compressed_and_other_types_round_trip() {
        let p = raw_query("_ldap._tcp.corp.example", 33);
        let q = parse_query(&p).unwrap();
        let answers = [
            Record::from_rdata(
                name("_ldap._tcp.corp.example."),
                60,
                RData::SRV(SRV::new(0, 5, 389, name("dc1.corp.example."))),
            ),
            Record::from_rdata(
                name("_ldap._tcp.corp.example."),
                60,
                RData::TXT(TXT::new(vec!["v=1".into(), "x".into()])),
            ),
        ];
        let mut out = Vec::new();
        encode_reply(&q, &reply(ResponseCode::NoError, &answers), 512, &mut out);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.answers, answers);
        // SRV RDATA: 6 fixed octets plus the 18-octet uncompressed target.
        let rdlength_at = 12 + q.question.len() + 2 + 8;
        assert_eq!(&out[rdlength_at..rdlength_at + 2], &[0, 6 + 18]);
    }

    #[test]
    fn truncates_at_512_without_edns() {
        let p = raw_query("many.example", 1);
        let q = parse_query(&p).unwrap();
        let answers: Vec<Record> = (0..40).map(|i| a("many.example.", [10, 0, 0, i])).collect();
        let mut out = Vec::new();
        encode_reply(
            &q,
            &reply(ResponseCode::NoError, &answers),
            udp_limit(&q),
            &mut out,
        );
        assert_eq!(out.len(), 12 + q.question.len());
        assert_eq!(out[2] & 0x02, 0x02);
        let m = Message::from_vec(&out).unwrap();
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        assert_eq!(m.queries.len(), 1);

        // 30 fit: 12 + 18 + 30 * 16 = 510.
        encode_reply(
            &q,
            &reply(ResponseCode::NoError, &answers[..30]),
            udp_limit(&q),
            &mut out,
        );
        assert_eq!(out.len(), 510);
        assert_eq!(out[2] & 0x02, 0);
        // Over TCP the same reply fits.
        encode_reply(&q, &reply(ResponseCode::NoError, &answers), 65535, &mut out);
        assert_eq!(Message::from_vec(&out).unwrap().answers.len(), 40);
    }

    #[test]
    fn truncates_at_1232_with_edns_whatever_the_offer() {
        let mut p = raw_query("many.example", 1);
        add_opt(&mut p, 65535, 0, true);
        let q = parse_query(&p).unwrap();
        assert_eq!(udp_limit(&q), 1232);
        let answers: Vec<Record> = (0..=255)
            .map(|i| a("many.example.", [10, 0, 1, i]))
            .collect();
        let mut out = Vec::new();
        // 12 + 18 + 75 * 16 + 11 = 1241 > 1232; 74 fit.
        encode_reply(
            &q,
            &reply(ResponseCode::NoError, &answers[..75]),
            udp_limit(&q),
            &mut out,
        );
        let m = Message::from_vec(&out).unwrap();
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        assert!(m.edns.as_ref().unwrap().flags().dnssec_ok);
        assert_eq!(out.len(), 12 + 18 + 11);
        encode_reply(
            &q,
            &reply(ResponseCode::NoError, &answers[..74]),
            udp_limit(&q),
            &mut out,
        );
        assert_eq!(out.len(), 1225);
        assert_eq!(Message::from_vec(&out).unwrap().answers.len(), 74);
    }

    #[test]
    fn additional_that_does_not_fit_is_dropped_without_tc() {
        let p = raw_query("ns.example", 2);
        let q = parse_query(&p).unwrap();
        let answers = [Record::from_rdata(
            name("ns.example."),
            60,
            RData::NS(NS(name("a.ns.example."))),
        )];
        let additional: Vec<Record> = (0..40).map(|i| a("a.ns.example.", [10, 0, 0, i])).collect();
        let r = Reply {
            additional: &additional,
            ..reply(ResponseCode::NoError, &answers)
        };
        let mut out = Vec::new();
        encode_reply(&q, &r, 512, &mut out);
        let m = Message::from_vec(&out).unwrap();
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers, answers);
        assert!(m.additionals.is_empty());
    }

    #[test]
    fn unencodable_record_becomes_servfail() {
        let mut p = raw_query("big.example", 16);
        add_opt(&mut p, 1232, 0, false);
        let q = parse_query(&p).unwrap();
        let huge = TXT::new(vec!["x".repeat(255); 300]);
        let answers = [Record::from_rdata(
            name("big.example."),
            60,
            RData::TXT(huge),
        )];
        let mut out = Vec::new();
        encode_reply(&q, &reply(ResponseCode::NoError, &answers), 65535, &mut out);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(m.answers.is_empty());
        assert!(m.edns.is_some());
    }

    #[test]
    fn never_larger_than_hickory_and_smaller_on_0x20_case() {
        // hickory matches compression targets byte for byte, so a question whose case differs from
        // the owner (DNS 0x20 randomisation) costs it a full owner name per record.
        for (qname, ours_smaller) in [
            ("ip-10-0-0-12.ec2.internal", false),
            ("iP-10-0-0-12.eC2.InteRnal", true),
        ] {
            let p = raw_query(qname, 1);
            let q = parse_query(&p).unwrap();
            let answers = [a(EC2_NAME, [10, 0, 0, 12]), a(EC2_NAME, [10, 0, 0, 13])];
            let mut out = Vec::new();
            encode_reply(&q, &reply(ResponseCode::NoError, &answers), 512, &mut out);
            assert_eq!(out.len(), 75);
            let mut theirs = Message::response(q.id, OpCode::Query);
            theirs.add_query(Message::from_vec(&p).unwrap().queries.remove(0));
            theirs.add_answers(answers);
            let theirs = theirs.to_vec().unwrap();
            eprintln!(
                "{qname}: ours {} octets, hickory {}",
                out.len(),
                theirs.len()
            );
            assert!(out.len() <= theirs.len());
            assert_eq!(out.len() < theirs.len(), ours_smaller);
        }
    }

    #[test]
    fn do_bit_is_copied() {
        for dnssec_ok in [false, true] {
            let mut p = raw_query("example", 1);
            add_opt(&mut p, 1232, 0, dnssec_ok);
            let q = parse_query(&p).unwrap();
            assert_eq!(q.edns.unwrap().dnssec_ok, dnssec_ok);
            let mut out = Vec::new();
            encode_reply(&q, &Reply::empty(ResponseCode::NoError), 1232, &mut out);
            let edns = Message::from_vec(&out).unwrap().edns.unwrap();
            assert_eq!(edns.flags().dnssec_ok, dnssec_ok);
            assert_eq!(edns.version(), 0);
        }
    }

    #[test]
    fn ede_is_sent_only_with_edns() {
        let r = Reply {
            ede: Some((18, "prohibited")),
            ..Reply::empty(ResponseCode::Refused)
        };
        let mut p = raw_query("blocked.example", 1);
        let mut out = Vec::new();
        encode_reply(&parse_query(&p).unwrap(), &r, 512, &mut out);
        assert_eq!(out.len(), 12 + p.len() - 12);
        assert_eq!(
            Message::from_vec(&out).unwrap().metadata.response_code,
            ResponseCode::Refused
        );

        add_opt(&mut p, 1232, 0, false);
        encode_reply(&parse_query(&p).unwrap(), &r, 1232, &mut out);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        let edns = m.edns.unwrap();
        let Some(EdnsOption::Unknown(15, data)) = edns.option(EdnsCode::from(15)) else {
            panic!("no EDE option: {edns:?}");
        };
        assert_eq!(&data[..2], &18u16.to_be_bytes());
        assert_eq!(&data[2..], b"prohibited");
    }

    #[test]
    fn badvers_goes_into_the_opt_record() {
        let mut p = raw_query("example", 1);
        add_opt(&mut p, 1232, 1, false);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.edns.unwrap().version, 1);
        let mut out = Vec::new();
        encode_reply(&q, &Reply::empty(ResponseCode::BADVERS), 1232, &mut out);
        assert_eq!(out[3] & 0x0F, 0);
        let opt = &out[12 + q.question.len()..];
        assert_eq!(&opt[..5], &[0, 0, 41, 0x04, 0xD0]);
        assert_eq!(opt[5], 1, "extended rcode");
        assert_eq!(opt[6], 0, "version");
        let m = Message::from_vec(&out).unwrap();
        // hickory decodes 16 as BADSIG, which shares the value with BADVERS.
        assert_eq!(u16::from(m.metadata.response_code), 16);
    }

    #[test]
    fn header_only_replies() {
        let mut out = Vec::new();
        encode_header_only(0xBEEF, 4, true, ResponseCode::NotImp, &mut out);
        assert_eq!(
            out,
            [0xBE, 0xEF, 0x80 | 4 << 3 | 1, 4, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        encode_header_only(1, 0, false, ResponseCode::FormErr, &mut out);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert!(m.queries.is_empty());
    }

    #[test]
    fn other_opcodes_parse_or_get_notimp() {
        let mut p = raw_query("example", 1);
        p[2] |= 2 << 3; // STATUS
        assert_eq!(parse_query(&p).unwrap().opcode, 2);
        p[5] = 0;
        assert_eq!(
            parse_query(&p).unwrap_err(),
            (ParseError::Reply {
                id: 0x1234,
                opcode: 2,
                recursion_desired: true,
                rcode: ResponseCode::NotImp
            })
        );
    }

    #[test]
    fn malformed_headers_and_counts() {
        assert_eq!(parse_query(&[]).unwrap_err(), ParseError::Drop);
        assert_eq!(parse_query(&[0; 11]).unwrap_err(), ParseError::Drop);
        let good = raw_query("example.com", 1);

        let mut p = good.clone();
        p[2] |= 0x80;
        assert_eq!(parse_query(&p).unwrap_err(), ParseError::Drop, "QR set");

        for qdcount in [0, 2] {
            let mut p = good.clone();
            p[5] = qdcount;
            assert_eq!(
                parse_query(&p).unwrap_err(),
                formerr(&p),
                "qdcount {qdcount}"
            );
        }
    }

    #[test]
    fn malformed_question_names() {
        let good = raw_query("example.com", 1);
        let mut p = good[..12].to_vec();
        p.push(64);
        p.extend_from_slice(&[b'a'; 64]);
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse_query(&p).unwrap_err(), formerr(&p), "label 64");

        // 4 * (1 + 63) = 256 octets of labels, plus the root: too long.
        let mut p = good[..12].to_vec();
        for _ in 0..4 {
            p.push(63);
            p.extend_from_slice(&[b'a'; 63]);
        }
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse_query(&p).unwrap_err(), formerr(&p), "name 256");
        // 255 exactly is fine: 3 * 64 + 62 + root.
        let mut p = good[..12].to_vec();
        for len in [63u8, 63, 63, 61] {
            p.push(len);
            p.extend(std::iter::repeat_n(b'b', len.into()));
        }
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(p.len() - 12 - 4, 255);
        assert_eq!(parse_query(&p).unwrap().name.iter().len(), 4);

        for label_type in [0x40, 0x80] {
            let mut p = good[..12].to_vec();
            p.extend_from_slice(&[label_type, b'a', 0, 0, 1, 0, 1]);
            assert_eq!(
                parse_query(&p).unwrap_err(),
                formerr(&p),
                "label type {label_type:#x}"
            );
        }

        let mut p = good[..12].to_vec();
        p.extend_from_slice(&[1, b'a', 0xC0, 12, 0, 1, 0, 1]);
        assert_eq!(
            parse_query(&p).unwrap_err(),
            formerr(&p),
            "pointer in question"
        );
    }

    #[test]
    fn truncated_questions_and_records() {
        let good = raw_query("example.com", 1);
        // Truncated question.
        for cut in 13..good.len() {
            assert_eq!(
                parse_query(&good[..cut]).unwrap_err(),
                formerr(&good),
                "cut at {cut}"
            );
        }

        // An answer record whose owner is a pointer to itself: skipped, not followed.
        let mut p = good.clone();
        p[7] = 1;
        let at = p.len() as u8;
        p.extend_from_slice(&[0xC0, at, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
        assert!(parse_query(&p).is_ok(), "pointer loop in answer is skipped");
        p[7] = 2;
        assert_eq!(
            parse_query(&p).unwrap_err(),
            formerr(&p),
            "missing second answer"
        );
    }

    #[test]
    fn malformed_opt_records() {
        let good = raw_query("example.com", 1);
        let mut p = good.clone();
        add_opt(&mut p, 1232, 0, false);
        let opt_len = p.len();
        for cut in opt_len - 11..opt_len {
            assert_eq!(
                parse_query(&p[..cut]).unwrap_err(),
                formerr(&p),
                "OPT cut at {cut}"
            );
        }
        let mut p2 = p.clone();
        p2[opt_len - 1] = 4; // RDLENGTH 4, no RDATA
        assert_eq!(
            parse_query(&p2).unwrap_err(),
            formerr(&p),
            "OPT RDATA missing"
        );
        p2.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4]); // option claims 8 octets, RDLENGTH is 4
        assert_eq!(
            parse_query(&p2).unwrap_err(),
            formerr(&p),
            "OPT option overruns"
        );

        let mut p2 = p.clone();
        add_opt(&mut p2, 1232, 0, false);
        assert_eq!(parse_query(&p2).unwrap_err(), formerr(&p), "two OPTs");

        let mut p2 = good.clone();
        p2.extend_from_slice(&[1, b'x', 0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]);
        p2[11] = 1;
        assert_eq!(
            parse_query(&p2).unwrap_err(),
            formerr(&p),
            "OPT with non-root owner"
        );

        // Trailing garbage is tolerated.
        let mut p2 = p.clone();
        p2.extend_from_slice(&[0xFF; 7]);
        assert!(parse_query(&p2).unwrap().edns.is_some());

        // Other additional records are skipped.
        let mut p2 = good.clone();
        p2.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
        p2[11] = 1;
        add_opt(&mut p2, 4096, 0, true);
        assert!(parse_query(&p2).unwrap().edns.unwrap().dnssec_ok);
    }

    /// xorshift64*: a deterministic stream for the fuzz-style tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    /// Parses `p` and, when it parses, encodes a reply to it: neither may panic.
    fn exercise(p: &[u8], out: &mut Vec<u8>, answers: &[Record]) {
        match parse_query(p) {
            Ok(q) => {
                encode_reply(
                    &q,
                    &reply(ResponseCode::NoError, answers),
                    udp_limit(&q),
                    out,
                );
                assert!(out.len() <= udp_limit(&q));
                assert!(Message::from_vec(out).is_ok());
                // A negative answer owned by the question's last label, whatever the mutated question holds.
                let mut soa = route53_soa(".");
                soa.name = q.name.trim_to(1);
                let authority = [soa];
                let negative = Reply {
                    authority: &authority,
                    ..Reply::empty(ResponseCode::NXDomain)
                };
                let template = NegativeSoa::new(&route53_soa(".")).unwrap();
                if template.encode(&q, &negative, udp_limit(&q), out) {
                    assert!(out.len() <= udp_limit(&q));
                    assert_eq!(Message::from_vec(out).unwrap().authorities, authority);
                }
            }
            Err(ParseError::Reply {
                id,
                opcode,
                recursion_desired,
                rcode,
            }) => {
                encode_header_only(id, opcode, recursion_desired, rcode, out);
            }
            Err(ParseError::Drop) => {}
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut out = Vec::new();
        let answers = [a(EC2_NAME, [10, 0, 0, 12])];
        for _ in 0..20_000 {
            let len = (rng.next() % 300) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if p.len() > 12 && rng.next() & 1 == 0 {
                // Make it look like a query more often, so the deeper paths run.
                p[2] &= 0x7F;
                p[4] = 0;
                p[5] = 1;
            }
            exercise(&p, &mut out, &answers);
        }
    }

    #[test]
    fn every_truncation_and_byte_mutation_is_safe() {
        let mut p = raw_query("ip-10-0-0-12.ec2.internal", 1);
        p[7] = 1; // one answer record using a pointer to the question
        p.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 12]);
        add_opt(&mut p, 4096, 0, true);
        let rdlength_at = p.len() - 1;
        p[rdlength_at] = 6; // RDLENGTH: one 2-octet option
        p.extend_from_slice(&[0, 10, 0, 2, 0xAB, 0xCD]);
        assert!(parse_query(&p).is_ok());
        let answers = [a(EC2_NAME, [10, 0, 0, 12]), a(EC2_NAME, [10, 0, 0, 13])];
        let mut out = Vec::new();
        for cut in 0..=p.len() {
            exercise(&p[..cut], &mut out, &answers);
        }
        let mut m = p.clone();
        for i in 0..p.len() {
            for b in 0..=255u8 {
                m[i] = b;
                exercise(&m, &mut out, &answers);
            }
            m[i] = p[i];
        }
    }
}
