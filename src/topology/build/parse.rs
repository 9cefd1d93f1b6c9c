//! Text to addresses, networks, domain names and `rate_limit`, with messages that say what to write instead.

use super::*;

pub(super) fn parse_v4_net(text: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = text
        .parse()
        .map_err(|_| format!("`{text}` is not an IPv4 CIDR; write e.g. `10.0.1.0/24`"))?;
    if net.network() != net.addr() {
        return Err(format!(
            "`{text}` has host bits set; write `{}`",
            net.trunc()
        ));
    }
    Ok(net)
}

pub(super) fn parse_v6_net(text: &str) -> Result<Ipv6Net, String> {
    let net: Ipv6Net = text.parse().map_err(|_| {
        format!("`{text}` is not an IPv6 CIDR; write e.g. `2600:1f18:1234:5600::/56`")
    })?;
    if net.network() != net.addr() {
        return Err(format!(
            "`{text}` has host bits set; write `{}`",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Validates `rate_limit`; every problem is reported, defaults fill what is absent.
pub(super) fn rate_limit(
    ctx: &mut Ctx<'_>,
    file: &SourceFile,
    path: &YamlPath,
    raw: &raw::RateLimit,
) -> super::RateLimit {
    let mut rl = super::RateLimit::new(raw.responses_per_second);
    if raw.responses_per_second == 0 {
        ctx.err(
            file,
            &path.key("responses_per_second"),
            "responses_per_second must be at least 1; remove `rate_limit` to turn limiting off",
        );
    }
    if let Some(slip) = raw.slip {
        if slip > 10 {
            ctx.err(file, &path.key("slip"), format!("slip {slip} is out of range; write 0 (drop every limited response) to 10 (BIND's range), default 2"));
        }
        rl.slip = slip;
    }
    if let Some(p) = raw.ipv4_prefix {
        if !(1..=32).contains(&p) {
            ctx.err(
                file,
                &path.key("ipv4_prefix"),
                format!("ipv4_prefix {p} is out of range; write 1 to 32 (default 24)"),
            );
        }
        rl.ipv4_prefix = p.clamp(1, 32);
    }
    if let Some(p) = raw.ipv6_prefix {
        if !(1..=128).contains(&p) {
            ctx.err(
                file,
                &path.key("ipv6_prefix"),
                format!("ipv6_prefix {p} is out of range; write 1 to 128 (default 56)"),
            );
        }
        rl.ipv6_prefix = p.clamp(1, 128);
    }
    if let Some(list) = &raw.exempt {
        rl.exempt.clear();
        for (i, text) in list.iter().enumerate() {
            match parse_net(text) {
                Ok(net) => rl.exempt.push(net),
                Err(msg) => ctx.err(file, &path.key("exempt").index(i), msg),
            }
        }
    }
    rl
}

pub(super) fn parse_net(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{text}` is not a CIDR or address; write e.g. `192.168.0.0/16`"))
}

pub(super) fn parse_target(text: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(sa);
    }
    text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)).map_err(|_| format!("`{text}` is not an address; write `IP` or `IP:PORT`, e.g. `192.168.10.10` or `127.0.0.1:5301` ([::1]:5301 for IPv6)"))
}

pub(super) fn parse_ip_type(
    text: Option<&str>,
    allow_service_defined: bool,
) -> Result<Option<IpType>, String> {
    match text {
        None => Ok(None),
        Some("ipv4") => Ok(Some(IpType::Ipv4)),
        Some("ipv6") => Ok(Some(IpType::Ipv6)),
        Some("dualstack") => Ok(Some(IpType::Dualstack)),
        Some("service-defined") if allow_service_defined => Ok(Some(IpType::ServiceDefined)),
        Some(other) => Err(format!(
            "`{other}`: write ipv4, dualstack or ipv6{}",
            if allow_service_defined {
                " (or service-defined)"
            } else {
                ""
            }
        )),
    }
}

pub(super) fn ip_type_name(t: IpType) -> &'static str {
    match t {
        IpType::Ipv4 => "ipv4",
        IpType::Ipv6 => "ipv6",
        IpType::Dualstack => "dualstack",
        IpType::ServiceDefined => "service-defined",
    }
}

/// Parses a domain name written in a topology into a lowercase FQDN.
pub(super) fn parse_domain(text: &str) -> Result<Name, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty domain name".into());
    }
    let mut name =
        Name::from_str(trimmed).map_err(|e| format!("`{trimmed}` is not a domain name ({e})"))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// One of a fixed set of spellings, case-insensitive (so AWS's `BLOCK`, `NXDOMAIN`, … read as `block`, `nxdomain`);
/// the error lists the lowercase spellings.
pub(super) fn parse_choice<T: Copy>(
    text: &str,
    field: &str,
    choices: &[(&[&str], T)],
) -> Result<T, String> {
    let wanted = text.trim().to_ascii_lowercase();
    for (names, value) in choices {
        if names.iter().any(|n| n.eq_ignore_ascii_case(&wanted)) {
            return Ok(*value);
        }
    }
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("`{}`", n[0])).collect();
    let list = match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(format!("unknown {field} `{text}`; write {list}"))
}
