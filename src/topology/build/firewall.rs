//! `firewall:`: DNS Firewall domain lists, rule groups and their VPC associations, validated as the
//! route53resolver API does (reference §12.1).

use super::*;

/// Association priorities AWS accepts (`Priority` of AssociateFirewallRuleGroup and of a Profile's rule group).
pub(super) const PRIORITIES: std::ops::RangeInclusive<i64> = 100..=9900;

/// Longest TTL a block override may have (AWS: `BlockOverrideTtl` 0..604800).
const MAX_OVERRIDE_TTL: i64 = 604_800;

impl Builder<'_> {
    pub(super) fn firewall(&mut self, ctx: &mut Ctx<'_>) {
        let origins: Vec<_> = Self::origins(ctx).collect();
        let sections: Vec<_> = origins
            .into_iter()
            .zip(self.raws)
            .filter_map(|(o, raw)| raw.firewall.as_ref().map(|f| (o, f)))
            .collect();
        let base = YamlPath::default().key("firewall");
        for (o, f) in &sections {
            for (i, item) in f.domain_lists.iter().enumerate() {
                self.domain_list(ctx, *o, &base.key("domain_lists").index(i), item);
            }
        }
        for (o, f) in &sections {
            for (i, item) in f.rule_groups.iter().enumerate() {
                self.rule_group(ctx, *o, &base.key("rule_groups").index(i), item);
            }
        }
        for (o, f) in &sections {
            for (i, item) in f.associations.iter().enumerate() {
                self.firewall_association(ctx, *o, &base.key("associations").index(i), item);
            }
        }
    }

    fn domain_list(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        item: &raw::Lenient<raw::DomainList>,
    ) {
        let Some(d) = o
            .file
            .item::<raw::DomainList>(&item.value, path, &mut ctx.diags)
        else {
            note_broken(ctx, &item.value);
            return;
        };
        let seed = d.name.clone().unwrap_or_else(|| path.to_string());
        let id = self.prefixed_id(
            ctx,
            o,
            path,
            d.id.as_deref(),
            "rslvr-fdl-",
            "domain list",
            &seed,
        );
        let mut domains = Vec::new();
        for (j, text) in d.domains.iter().enumerate() {
            match domain_pattern(text) {
                Ok(p) => domains.push(p),
                Err(msg) => ctx.err(o.file, &path.key("domains").index(j), msg),
            }
        }
        self.topo.firewall.domain_lists.push(DomainList {
            name: d.name.clone().unwrap_or_else(|| id.clone()),
            id,
            domains,
        });
    }

    fn rule_group(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        item: &raw::Lenient<raw::RuleGroup>,
    ) {
        let Some(g) = o
            .file
            .item::<raw::RuleGroup>(&item.value, path, &mut ctx.diags)
        else {
            note_broken(ctx, &item.value);
            return;
        };
        let seed = g.name.clone().unwrap_or_else(|| path.to_string());
        let id = self.prefixed_id(
            ctx,
            o,
            path,
            g.id.as_deref(),
            "rslvr-frg-",
            "rule group",
            &seed,
        );
        let mut rules: Vec<FirewallRule> = Vec::new();
        let mut priorities: Vec<i64> = Vec::new();
        for (j, r) in g.rules.iter().enumerate() {
            let rp = path.key("rules").index(j);
            if priorities.contains(&r.priority) {
                ctx.err(o.file, &rp.key("priority"), format!("another rule of this group has priority {}; AWS requires a unique priority per rule in a rule group (leave gaps such as 100, 200, …)", r.priority));
            }
            priorities.push(r.priority);
            if let Some(rule) = self.firewall_rule(ctx, o, &rp, r) {
                rules.push(rule);
            }
        }
        rules.sort_by_key(|r| r.priority);
        self.topo.firewall.rule_groups.push(RuleGroup {
            name: g.name.clone().unwrap_or_else(|| id.clone()),
            id,
            rules,
        });
    }

    fn firewall_rule(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        r: &raw::FirewallRule,
    ) -> Option<FirewallRule> {
        let priority = match u32::try_from(r.priority) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                ctx.err(o.file, &path.key("priority"), format!("priority {} is not a positive number; write e.g. 100 (lowest is evaluated first)", r.priority));
                None
            }
        };
        let domain_list = self.domain_list_ref(ctx, o, &path.key("domain_list"), &r.domain_list);
        let action = rule_action(ctx, o, path, r);
        let qtype = r.qtype.as_deref().and_then(|t| {
            parse_qtype(t)
                .map_err(|m| ctx.err(o.file, &path.key("qtype"), m))
                .ok()
        });
        let redirection = match r.redirection.as_deref().map(|t| {
            parse_choice(
                t,
                "redirection",
                &[
                    (
                        &["inspect", "INSPECT_REDIRECTION_DOMAIN"],
                        Redirection::Inspect,
                    ),
                    (&["trust", "TRUST_REDIRECTION_DOMAIN"], Redirection::Trust),
                ],
            )
        }) {
            None => Some(Redirection::Inspect),
            Some(Ok(x)) => Some(x),
            Some(Err(msg)) => {
                ctx.err(o.file, &path.key("redirection"), msg);
                None
            }
        };
        Some(FirewallRule {
            name: r.name.clone(),
            priority: priority?,
            domain_list: domain_list?,
            action: action?,
            qtype,
            redirection: redirection?,
        })
    }

    fn firewall_association(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        item: &raw::Lenient<raw::FirewallAssociation>,
    ) {
        let Some(a) = o
            .file
            .item::<raw::FirewallAssociation>(&item.value, path, &mut ctx.diags)
        else {
            return;
        };
        let group = self.rule_group_ref(ctx, o, &path.key("rule_group"), &a.rule_group);
        let vpc = self.lookup_vpc(ctx, o, &path.key("vpc"), Some(&a.vpc));
        let priority = association_priority(ctx, o, &path.key("priority"), a.priority);
        if let (Some(rule_group), Some(vpc), Some(priority)) = (group, vpc, priority) {
            self.topo.firewall.associations.push(FirewallAssociation {
                rule_group,
                target: AssociatedWith::Vpc(vpc),
                priority,
            });
            self.fw_assoc_paths.push((o.idx, path.clone()));
        }
    }

    /// An id as written (checked), or one derived from `seed`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prefixed_id(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        id: Option<&str>,
        prefix: &str,
        what: &str,
        seed: &str,
    ) -> String {
        let id = match id {
            Some(id) if valid_id(id, prefix) => id.to_string(),
            Some(id) => {
                ctx.err(
                    o.file,
                    &path.key("id"),
                    format!("malformed {what} id `{id}`; {}", id_hint(prefix)),
                );
                id.to_string()
            }
            None => derived_id(prefix, &[prefix, seed]),
        };
        self.claim_id(ctx, o, &path.key("id"), &id);
        id
    }

    fn domain_list_ref(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        key: &str,
    ) -> Option<usize> {
        let lists = &self.topo.firewall.domain_lists;
        let names: Vec<(&str, &str)> = lists
            .iter()
            .map(|l| (l.id.as_str(), l.name.as_str()))
            .collect();
        by_id_or_name(
            ctx,
            o,
            path,
            key,
            &names,
            "domain list",
            "firewall.domain_lists",
        )
    }

    pub(super) fn rule_group_ref(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        key: &str,
    ) -> Option<usize> {
        let groups = &self.topo.firewall.rule_groups;
        let names: Vec<(&str, &str)> = groups
            .iter()
            .map(|g| (g.id.as_str(), g.name.as_str()))
            .collect();
        by_id_or_name(
            ctx,
            o,
            path,
            key,
            &names,
            "rule group",
            "firewall.rule_groups",
        )
    }

    /// Per VPC, direct associations and its Profile's together: priorities unique, each rule group once (AWS
    /// rejects a second association of a priority or of a rule group with one VPC).
    pub(super) fn check_firewall_associations(&self, ctx: &mut Ctx<'_>) {
        for vpc in 0..self.topo.vpcs.len() {
            let mut seen: Vec<(u32, usize)> = Vec::new();
            for (k, a) in self.topo.firewall.associations.iter().enumerate() {
                let applies = match a.target {
                    AssociatedWith::Vpc(v) => v == vpc,
                    AssociatedWith::Profile(p) => self.topo.profiles[p].vpcs.contains(&vpc),
                };
                if !applies {
                    continue;
                }
                let (file, path) = &self.fw_assoc_paths[k];
                let file = &ctx.files[*file];
                let vpc_id = &self.topo.vpcs[vpc].id;
                if seen.iter().any(|(p, _)| *p == a.priority) {
                    let msg = format!(
                        "{vpc_id} already has a firewall rule group with priority {} (directly or through its Profile); priorities are unique per VPC, pick another from 100 to 9900",
                        a.priority
                    );
                    ctx.diags.push(file.at(&path.key("priority"), msg));
                } else if seen.iter().any(|(_, g)| *g == a.rule_group) {
                    let msg = format!(
                        "rule group {} is already associated with {vpc_id} (directly or through its Profile); associate it once",
                        self.topo.firewall.rule_groups[a.rule_group].id
                    );
                    ctx.diags.push(file.at(&path.key("rule_group"), msg));
                }
                seen.push((a.priority, a.rule_group));
            }
        }
    }
}

/// An item named by its id or by a unique name, reported when unknown or ambiguous.
fn by_id_or_name(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    key: &str,
    items: &[(&str, &str)],
    what: &str,
    section: &str,
) -> Option<usize> {
    if let Some(i) = items.iter().position(|(id, _)| *id == key) {
        return Some(i);
    }
    let named: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, (_, name))| *name == key)
        .map(|(i, _)| i)
        .collect();
    match named.as_slice() {
        [one] => Some(*one),
        [] => {
            if !ctx.broken_ids.contains(key) {
                let ids: Vec<&str> = items.iter().map(|(id, _)| *id).collect();
                let ids = if ids.is_empty() {
                    "none is defined".to_string()
                } else {
                    ids.join(", ")
                };
                ctx.err(o.file, path, format!("unknown {what} `{key}`; write the id or name of one under `{section}` ({ids})"));
            }
            None
        }
        _ => {
            ctx.err(
                o.file,
                path,
                format!("several {what}s are named `{key}`; write the id of one"),
            );
            None
        }
    }
}

/// `example.com`, `*.example.com` (every name below) or `*` (every name); `*` anywhere else is an error.
pub(super) fn domain_pattern(text: &str) -> Result<DomainPattern, String> {
    let t = text.trim();
    if t == "*" || t == "*." {
        return Ok(DomainPattern::All);
    }
    let (below, rest) = match t.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if rest.contains('*') {
        return Err(format!(
            "`{text}`: a wildcard is allowed only as the first label (`*.example.com`), or alone (`*`)"
        ));
    }
    let name = parse_domain(rest)?;
    Ok(if below {
        DomainPattern::Below(name)
    } else {
        DomainPattern::Exact(name)
    })
}

/// `action` with its block response: BLOCK needs one; OVERRIDE needs `block_override`; nothing else takes them.
fn rule_action(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    r: &raw::FirewallRule,
) -> Option<FirewallAction> {
    #[derive(Clone, Copy, PartialEq)]
    enum Act {
        Allow,
        Alert,
        Block,
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Resp {
        Nxdomain,
        Nodata,
        Override,
    }
    let act = parse_choice(
        &r.action,
        "action",
        &[
            (&["allow"], Act::Allow),
            (&["alert"], Act::Alert),
            (&["block"], Act::Block),
        ],
    )
    .map_err(|m| ctx.err(o.file, &path.key("action"), m))
    .ok()?;
    let resp = match r.block_response.as_deref() {
        None => None,
        Some(t) => Some(
            parse_choice(
                t,
                "block_response",
                &[
                    (&["nxdomain"], Resp::Nxdomain),
                    (&["nodata"], Resp::Nodata),
                    (&["override"], Resp::Override),
                ],
            )
            .map_err(|m| ctx.err(o.file, &path.key("block_response"), m))
            .ok()?,
        ),
    };
    if act != Act::Block {
        if resp.is_some() {
            ctx.err(
                o.file,
                &path.key("block_response"),
                "`block_response` applies only to `action: block`; remove it",
            );
        }
        if r.block_override.is_some() {
            ctx.err(o.file, &path.key("block_override"), "`block_override` applies only to `action: block` with `block_response: override`; remove it");
        }
        return Some(if act == Act::Allow {
            FirewallAction::Allow
        } else {
            FirewallAction::Alert
        });
    }
    if resp != Some(Resp::Override) && r.block_override.is_some() {
        ctx.err(o.file, &path.key("block_override"), "`block_override` applies only to `block_response: override`; remove it or write `block_response: override`");
    }
    let response = match resp {
        None => {
            ctx.err(o.file, path, "a block rule needs `block_response`: `nxdomain`, `nodata` or `override` (AWS requires BlockResponse with BLOCK)");
            return None;
        }
        Some(Resp::Nxdomain) => BlockResponse::Nxdomain,
        Some(Resp::Nodata) => BlockResponse::Nodata,
        Some(Resp::Override) => block_override(ctx, o, path, r.block_override.as_ref())?,
    };
    Some(FirewallAction::Block(response))
}

fn block_override(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    b: Option<&raw::BlockOverride>,
) -> Option<BlockResponse> {
    let Some(b) = b else {
        ctx.err(o.file, path, "`block_response: override` needs `block_override: { type: CNAME, domain: walled.example.net, ttl: 0 }`");
        return None;
    };
    let bp = path.key("block_override");
    if let Some(kind) = &b.kind
        && !kind.eq_ignore_ascii_case("cname")
    {
        ctx.err(
            o.file,
            &bp.key("type"),
            format!("block override type `{kind}`: AWS offers only `CNAME`"),
        );
    }
    let ttl = b.ttl.unwrap_or(0);
    if !(0..=MAX_OVERRIDE_TTL).contains(&ttl) {
        ctx.err(
            o.file,
            &bp.key("ttl"),
            format!("ttl {ttl} is out of range; write 0 to {MAX_OVERRIDE_TTL} seconds (default 0)"),
        );
        return None;
    }
    let domain = parse_domain(&b.domain)
        .map_err(|m| ctx.err(o.file, &bp.key("domain"), m))
        .ok()?;
    Some(BlockResponse::Override {
        domain,
        ttl: ttl as u32,
    })
}

/// A query type name (`A`, `aaaa`, `MX`) or `TYPE65`.
fn parse_qtype(text: &str) -> Result<RecordType, String> {
    let upper = text.trim().to_ascii_uppercase();
    if let Some(n) = upper.strip_prefix("TYPE")
        && let Ok(code) = n.parse::<u16>()
    {
        return Ok(RecordType::from(code));
    }
    match RecordType::from_str(&upper) {
        Ok(RecordType::Unknown(_)) | Err(_) => Err(format!(
            "`{text}` is not a DNS query type; write e.g. `A`, `AAAA`, `MX`, `TXT` or `TYPE65`"
        )),
        Ok(t) => Ok(t),
    }
}

/// 100..9900, as AWS's association and Profile priorities.
pub(super) fn association_priority(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    priority: i64,
) -> Option<u32> {
    if PRIORITIES.contains(&priority) {
        Some(priority as u32)
    } else {
        ctx.err(o.file, path, format!("priority {priority} is out of range; write 100 to 9900 (unique per VPC, lowest is evaluated first)"));
        None
    }
}
