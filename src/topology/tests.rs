//! Validation of `rate_limit` and `allow`, and the unknown-field message they rely on.

use super::parse_str;

fn messages(text: &str) -> Vec<String> {
    match parse_str(text) {
        Ok(_) => Vec::new(),
        Err(d) => d.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn unknown_fields_point_at_the_key_and_list_the_known_ones() {
    assert_eq!(
        messages("rate_limit:\n  responses_per_second: 5\n  fooo: 1\n"),
        [
            "<inline>:3:3: unknown field `fooo`; expected one of: exempt, ipv4_prefix, ipv6_prefix, responses_per_second, slip"
        ]
    );
    let top = messages("fooo: 1\n");
    assert!(
        top[0].starts_with("<inline>:1:1: unknown field `fooo`; expected one of: allow,"),
        "{top:?}"
    );
}

#[test]
fn rate_limit_is_validated_with_defaults() {
    let t = parse_str("rate_limit: { responses_per_second: 20 }\n").expect("valid");
    assert_eq!(t.rate_limit, Some(super::RateLimit::new(20)));
    let t = parse_str(
        "rate_limit: { responses_per_second: 20, slip: 0, ipv4_prefix: 32, exempt: [] }\n",
    )
    .expect("valid");
    let rl = t.rate_limit.expect("set");
    assert_eq!(
        (rl.slip, rl.ipv4_prefix, rl.ipv6_prefix, rl.exempt.len()),
        (0, 32, 56, 0)
    );
    assert_eq!(
        messages(
            "rate_limit:\n  responses_per_second: 0\n  slip: 11\n  ipv6_prefix: 129\n  exempt: [x]\n"
        ),
        [
            "<inline>:2:25: responses_per_second must be at least 1; remove `rate_limit` to turn limiting off",
            "<inline>:3:9: slip 11 is out of range; write 0 (drop every limited response) to 10 (BIND's range), default 2",
            "<inline>:4:16: ipv6_prefix 129 is out of range; write 1 to 128 (default 56)",
            "<inline>:5:12: `x` is not a CIDR or address; write e.g. `192.168.0.0/16`",
        ]
    );
}

#[test]
fn allow_written_drops_the_implicit_loopback() {
    assert!(!parse_str("version: 1\n").expect("valid").allow_explicit);
    let t = parse_str("allow: [192.0.2.0/24]\n").expect("valid");
    assert!(t.allow_explicit);
    assert_eq!(
        t.allow,
        ["192.0.2.0/24".parse::<ipnet::IpNet>().expect("net")]
    );
}
