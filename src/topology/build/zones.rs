//! `hosted_zones:` and their records.

use super::*;

impl Builder<'_> {
    pub(super) fn hosted_zones(&mut self, ctx: &mut Ctx<'_>) {
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.hosted_zones.iter().enumerate() {
                let path = YamlPath::default().key("hosted_zones").index(i);
                let Some(z) = o
                    .file
                    .item::<raw::HostedZone>(&item.value, &path, &mut ctx.diags)
                else {
                    continue;
                };
                let name = match parse_domain(&z.name) {
                    Ok(n) => n,
                    Err(msg) => {
                        ctx.err(o.file, &path.key("name"), msg);
                        continue;
                    }
                };
                let id = z.id.clone().unwrap_or_else(|| {
                    // Zones of one name (associated with different VPCs) each get their own id.
                    let same = self
                        .topo
                        .hosted_zones
                        .iter()
                        .filter(|x| x.name == name)
                        .count();
                    let ordinal = same.to_string();
                    let seed: &[&str] = if same == 0 {
                        &["zone", &name.to_string()]
                    } else {
                        &["zone", &name.to_string(), &ordinal]
                    };
                    let h = stable_hash(seed);
                    format!("Z{:019X}", h).chars().take(21).collect()
                });
                self.claim_id(ctx, o, &path.key("id"), &id);
                let vpcs = self.vpc_refs(ctx, o, &path.key("vpcs"), z.vpcs.as_deref());
                let mut records = Vec::new();
                for (j, r) in z.records.iter().enumerate() {
                    let rp = path.key("records").index(j);
                    if let Some(rec) = self.record(ctx, o, &rp, &name, r) {
                        records.push(rec);
                    }
                }
                // A CNAME owns its name alone (RFC 1034 §3.6.2).
                let others: HashSet<&Name> = records
                    .iter()
                    .filter(|r| r.rtype != RecordType::CNAME)
                    .map(|r| &r.name)
                    .collect();
                for (j, rec) in records.iter().enumerate() {
                    if rec.rtype == RecordType::CNAME && others.contains(&rec.name) {
                        ctx.err(o.file, &path.key("records").index(j), format!("{} has a CNAME and other records; a CNAME must be the only record at its name", rec.name));
                    }
                }
                self.topo.hosted_zones.push(HostedZone {
                    id,
                    name,
                    vpcs,
                    records,
                });
            }
        }
    }

    pub(super) fn record(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        rp: &YamlPath,
        zone: &Name,
        r: &raw::Record,
    ) -> Option<ZoneRecord> {
        let name = record_name(ctx, o, rp, zone, &r.name)?;
        let rtype = record_type(ctx, o, rp, &r.kind)?;
        let Some(alias) = &r.alias else {
            return Some(ZoneRecord {
                name,
                rtype,
                ttl: r.ttl.unwrap_or(300),
                data: ZoneData::Values(record_values(ctx, o, rp, zone, rtype, r)?),
            });
        };
        if !matches!(rtype, RecordType::A | RecordType::AAAA) {
            ctx.err(
                o.file,
                &rp.key("type"),
                "alias records to an endpoint are of type A or AAAA",
            );
            return None;
        }
        let (endpoint, az) = self.alias_target(ctx, o, &rp.key("alias"), alias)?;
        if !r.values.is_empty() || r.value.is_some() {
            ctx.err(
                o.file,
                rp,
                "a record has either `values` or `alias`, not both",
            );
        }
        Some(ZoneRecord {
            name,
            rtype,
            ttl: r.ttl.unwrap_or(60),
            data: ZoneData::AliasEndpoint { endpoint, az },
        })
    }

    /// The endpoint (index) and optional AZ an alias record points at.
    fn alias_target(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        ap: &YamlPath,
        alias: &raw::Alias,
    ) -> Option<(usize, Option<String>)> {
        let endpoints = &self.topo.endpoints;
        let Some(endpoint) = endpoints.iter().position(|e| e.id == alias.endpoint) else {
            if !ctx.broken_ids.contains(&alias.endpoint) {
                let list: Vec<&str> = endpoints
                    .iter()
                    .filter(|e| e.kind == EndpointKind::Interface)
                    .map(|e| e.id.as_str())
                    .collect();
                ctx.err(
                    o.file,
                    &ap.key("endpoint"),
                    format!(
                        "unknown endpoint `{}`; write the id of an interface endpoint ({})",
                        alias.endpoint,
                        list.join(", ")
                    ),
                );
            }
            return None;
        };
        let Some(az) = &alias.az else {
            return Some((endpoint, None));
        };
        match normalize_az(&self.topo.region, az) {
            Ok(az) if endpoints[endpoint].enis.iter().any(|e| e.az == az) => {
                Some((endpoint, Some(az)))
            }
            Ok(az) => {
                ctx.err(
                    o.file,
                    &ap.key("az"),
                    format!("endpoint {} has no ENI in {az}", alias.endpoint),
                );
                None
            }
            Err(msg) => {
                ctx.err(o.file, &ap.key("az"), msg);
                None
            }
        }
    }
}

/// A record's owner name: `@` (or empty) for the apex, relative to the zone, or absolute; always inside the zone.
fn record_name(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    rp: &YamlPath,
    zone: &Name,
    text: &str,
) -> Option<Name> {
    let name = if text == "@" || text.is_empty() {
        zone.clone()
    } else if text.ends_with('.') {
        match parse_domain(text) {
            Ok(n) => n,
            Err(msg) => {
                ctx.err(o.file, &rp.key("name"), msg);
                return None;
            }
        }
    } else {
        let relative = Name::from_str(text)
            .ok()
            .and_then(|n| n.append_domain(zone).ok());
        let Some(n) = relative else {
            ctx.err(o.file, &rp.key("name"), format!("`{text}` is not a valid record name; write a name relative to the zone, `@` for the apex, or an absolute name ending in a dot"));
            return None;
        };
        n.to_lowercase()
    };
    if !zone.zone_of(&name) {
        ctx.err(
            o.file,
            &rp.key("name"),
            format!("{name} is outside zone {zone}; write a name inside the zone"),
        );
        return None;
    }
    Some(name)
}

/// The record types a private hosted zone record may have here.
fn record_type(ctx: &mut Ctx<'_>, o: Origin<'_>, rp: &YamlPath, text: &str) -> Option<RecordType> {
    use RecordType::*;
    match RecordType::from_str(&text.to_uppercase()) {
        Ok(t @ (A | AAAA | CNAME | TXT | MX | SRV | PTR | NS | CAA)) => Some(t),
        _ => {
            ctx.err(o.file, &rp.key("type"), format!("record type `{text}` is not supported; write one of A, AAAA, CNAME, TXT, MX, SRV, PTR, NS, CAA"));
            None
        }
    }
}

/// The data of a record given by `values` (or one `value`); every bad value is reported.
fn record_values(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    rp: &YamlPath,
    zone: &Name,
    rtype: RecordType,
    r: &raw::Record,
) -> Option<Vec<RData>> {
    let texts: Vec<&String> = r.values.iter().chain(r.value.iter()).collect();
    if texts.is_empty() {
        ctx.err(
            o.file,
            rp,
            "record has no `values` (or `value`, or `alias`)",
        );
        return None;
    }
    // Sized exactly: most records have one value, and a `Vec` grown by push keeps room for four.
    let mut rdatas = Vec::with_capacity(texts.len());
    for (k, text) in texts.iter().enumerate() {
        let vp = if r.values.is_empty() {
            rp.key("value")
        } else {
            rp.key("values").index(k)
        };
        match parse_rdata(rtype, text, zone) {
            Ok(rd) => rdatas.push(rd),
            Err(msg) => ctx.err(o.file, &vp, msg),
        }
    }
    if rtype == RecordType::CNAME && rdatas.len() > 1 {
        ctx.err(o.file, rp, "a CNAME has exactly one value");
    }
    Some(rdatas)
}

pub(super) fn parse_rdata(rtype: RecordType, text: &str, zone: &Name) -> Result<RData, String> {
    let name_of = |t: &str| -> Result<Name, String> {
        if t.ends_with('.') {
            parse_domain(t)
        } else {
            Name::from_str(t)
                .ok()
                .and_then(|n| n.append_domain(zone).ok())
                .map(|n| n.to_lowercase())
                .ok_or_else(|| format!("`{t}` is not a domain name"))
        }
    };
    let fields: Vec<&str> = text.split_whitespace().collect();
    match rtype {
        RecordType::A => text
            .parse::<Ipv4Addr>()
            .map(|a| RData::A(a.into()))
            .map_err(|_| format!("`{text}` is not an IPv4 address; write e.g. 10.0.1.100")),
        RecordType::AAAA => text
            .parse::<Ipv6Addr>()
            .map(|a| RData::AAAA(a.into()))
            .map_err(|_| format!("`{text}` is not an IPv6 address")),
        RecordType::CNAME => Ok(RData::CNAME(rdata::CNAME(name_of(text)?))),
        RecordType::PTR => Ok(RData::PTR(rdata::PTR(name_of(text)?))),
        RecordType::NS => Ok(RData::NS(rdata::NS(name_of(text)?))),
        RecordType::TXT => Ok(RData::TXT(TXT::new(vec![
            text.trim_matches('"').to_string(),
        ]))),
        RecordType::MX => match fields.as_slice() {
            [pref, host] => Ok(RData::MX(MX::new(
                pref.parse()
                    .map_err(|_| format!("MX preference `{pref}` is not a number"))?,
                name_of(host)?,
            ))),
            _ => Err(format!(
                "`{text}`: write an MX value as `PREFERENCE HOST`, e.g. `10 mail.example.com.`"
            )),
        },
        RecordType::SRV => match fields.as_slice() {
            [p, w, port, target] => {
                let num = |s: &str| {
                    s.parse::<u16>()
                        .map_err(|_| format!("SRV field `{s}` is not a number"))
                };
                Ok(RData::SRV(SRV::new(
                    num(p)?,
                    num(w)?,
                    num(port)?,
                    name_of(target)?,
                )))
            }
            _ => Err(format!(
                "`{text}`: write an SRV value as `PRIORITY WEIGHT PORT TARGET`, e.g. `10 5 5060 sip.example.com.`"
            )),
        },
        RecordType::CAA => match fields.as_slice() {
            [flags, tag, value] => {
                let critical = *flags != "0";
                let value = value.trim_matches('"');
                match *tag {
                    "issue" => Ok(RData::CAA(CAA::new_issue(
                        critical,
                        Name::from_str(value).ok(),
                        vec![],
                    ))),
                    "iodef" => value
                        .parse()
                        .map(|url| RData::CAA(CAA::new_iodef(critical, url)))
                        .map_err(|_| format!("`{value}` is not a URL")),
                    _ => Err(format!(
                        "CAA tag `{tag}` is not supported; write `0 issue \"ca.example.net\"`"
                    )),
                }
            }
            _ => Err(format!(
                "`{text}`: write a CAA value as `FLAGS TAG VALUE`, e.g. `0 issue \"amazon.com\"`"
            )),
        },
        _ => Err(format!("record type {rtype} is not supported")),
    }
}
