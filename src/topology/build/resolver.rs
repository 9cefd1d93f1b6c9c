//! `resolver:` (inbound and outbound endpoints, rules) and `networks:`.

use super::*;

impl Builder<'_> {
    /// `allowed_sources` of a Resolver endpoint: CIDRs, inbound endpoints only.
    fn allowed_sources(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        inbound: bool,
        list: Option<&[String]>,
    ) -> Option<Vec<IpNet>> {
        let list = list?;
        let path = path.key("allowed_sources");
        if !inbound {
            ctx.err(o.file, &path, "only inbound endpoints take `allowed_sources` (their security group's DNS ingress); remove it here");
            return None;
        }
        Some(nets(ctx, o, &path, Some(list)))
    }

    pub(super) fn resolver_endpoints(&mut self, ctx: &mut Ctx<'_>) -> Vec<PendingIp> {
        let mut pending = Vec::new();
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (inbound, list, key, prefix) in [
                (
                    true,
                    &raw.resolver.inbound_endpoints,
                    "inbound_endpoints",
                    "rslvr-in-",
                ),
                (
                    false,
                    &raw.resolver.outbound_endpoints,
                    "outbound_endpoints",
                    "rslvr-out-",
                ),
            ] {
                for (i, item) in list.iter().enumerate() {
                    let path = YamlPath::default().key("resolver").key(key).index(i);
                    let Some(r) =
                        o.file
                            .item::<raw::ResolverEndpoint>(&item.value, &path, &mut ctx.diags)
                    else {
                        note_broken(ctx, &item.value);
                        continue;
                    };
                    let Some(vpc) = self.lookup_vpc(ctx, o, &path.key("vpc"), r.vpc.as_deref())
                    else {
                        continue;
                    };
                    let id = match &r.id {
                        Some(id) if valid_id(id, prefix) => id.clone(),
                        Some(id) => {
                            ctx.err(
                                o.file,
                                &path.key("id"),
                                format!(
                                    "malformed resolver endpoint id `{id}`; {}",
                                    id_hint(prefix)
                                ),
                            );
                            id.clone()
                        }
                        None => {
                            derived_id(prefix, &[prefix, &self.topo.vpcs[vpc].id, &i.to_string()])
                        }
                    };
                    self.claim_id(ctx, o, &path.key("id"), &id);
                    let owner = if inbound {
                        self.topo.inbound_endpoints.len()
                    } else {
                        self.topo.outbound_endpoints.len()
                    };
                    let mut ips = Vec::new();
                    match &r.ips {
                        Some(list) => {
                            for (j, text) in list.iter().enumerate() {
                                match text.parse::<IpAddr>() {
                                    Ok(ip) => {
                                        self.check_ip(ctx, o, &path.key("ips").index(j), vpc, ip);
                                        ips.push(ip);
                                    }
                                    Err(_) => ctx.err(
                                        o.file,
                                        &path.key("ips").index(j),
                                        format!(
                                            "`{text}` is not an IP address; write e.g. 10.0.1.53"
                                        ),
                                    ),
                                }
                            }
                        }
                        None => {
                            // AWS requires two addresses; take the first subnet of the VPC's first two AZs.
                            for (slot, subnet) in first_subnet_per_az(&self.topo.vpcs[vpc])
                                .into_iter()
                                .take(2)
                                .enumerate()
                            {
                                ips.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                                pending.push(PendingIp {
                                    slot: if inbound {
                                        Slot::Inbound(owner, slot)
                                    } else {
                                        Slot::Outbound(owner, slot)
                                    },
                                    subnet: self.topo.vpcs[vpc].subnets[subnet].cidr,
                                    seed: format!("{id}/{slot}"),
                                });
                            }
                        }
                    }
                    let allowed_sources =
                        self.allowed_sources(ctx, o, &path, inbound, r.allowed_sources.as_deref());
                    let protocols = endpoint_protocols(ctx, o.file, &path, r.protocols.as_deref());
                    let ep = ResolverEndpoint {
                        id,
                        vpc,
                        ips,
                        allowed_sources,
                        protocols,
                    };
                    if inbound {
                        self.topo.inbound_endpoints.push(ep)
                    } else {
                        self.topo.outbound_endpoints.push(ep)
                    }
                }
            }
        }
        pending
    }

    pub(super) fn rules(&mut self, ctx: &mut Ctx<'_>) {
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.resolver.rules.iter().enumerate() {
                let path = YamlPath::default().key("resolver").key("rules").index(i);
                let Some(r) = o.file.item::<raw::Rule>(&item.value, &path, &mut ctx.diags) else {
                    note_broken(ctx, &item.value);
                    continue;
                };
                let kind = match r.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("forward") => Some(RuleKind::Forward),
                    Some("system") => Some(RuleKind::System),
                    Some("delegate") => None,
                    Some(other) => {
                        ctx.err(o.file, &path.key("type"), format!("unknown rule type `{other}`; write `forward`, `system` or `delegate`"));
                        note_broken(ctx, &item.value);
                        continue;
                    }
                };
                match kind {
                    Some(kind) => self.rule(ctx, o, &path, &r, kind),
                    None => self.delegation(ctx, o, &path, &r),
                }
            }
        }
    }

    /// A forward or system rule.
    fn rule(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        r: &raw::Rule,
        kind: RuleKind,
    ) {
        if r.delegation_record.is_some() {
            ctx.err(o.file, &path.key("delegation_record"), "only delegate rules have a `delegation_record`; write `type: delegate` or use `domain`");
        }
        let Some(text) = &r.domain else {
            ctx.err(
                o.file,
                path,
                "a forward or system rule needs `domain`, e.g. `domain: corp.example.com`",
            );
            return;
        };
        let domain = match parse_domain(text) {
            Ok(d) => d,
            Err(msg) => {
                ctx.err(o.file, &path.key("domain"), msg);
                return;
            }
        };
        let id = self.rule_id(ctx, o, path, r, &domain, &format!("{kind:?}"));
        let targets = rule_targets(ctx, o, path, r, kind);
        let vpcs = self.vpc_refs(ctx, o, &path.key("vpcs"), r.vpcs.as_deref());
        let outbound = self.rule_outbound(ctx, o, path, r, kind, &vpcs);
        self.check_rule_loops(ctx, o, path, &targets, &vpcs);
        for other in &self.topo.rules {
            if other.domain == domain && other.vpcs.iter().any(|v| vpcs.contains(v)) {
                ctx.err(o.file, &path.key("domain"), format!("rule {} for {domain} is already associated with a VPC this rule names; a VPC has one rule per domain", other.id));
            }
        }
        self.topo.rules.push(Rule {
            id,
            kind,
            domain,
            targets,
            vpcs,
            outbound,
        });
    }

    /// A delegate rule (reference §12.3): `delegation_record` and an outbound endpoint, no domain or targets.
    fn delegation(&mut self, ctx: &mut Ctx<'_>, o: Origin<'_>, path: &YamlPath, r: &raw::Rule) {
        if r.domain.is_some() {
            ctx.err(o.file, &path.key("domain"), "a delegate rule matches its `delegation_record`, not a `domain`; rename `domain` to `delegation_record`");
        }
        if !r.targets.is_empty() {
            ctx.err(o.file, &path.key("targets"), "a delegate rule has no targets: queries go to the name servers of the delegation in the private hosted zone; remove `targets`");
        }
        let Some(text) = &r.delegation_record else {
            ctx.err(o.file, path, "a delegate rule needs `delegation_record`, the subdomain delegated with NS records in a private hosted zone, e.g. `delegation_record: onprem.corp.internal`");
            return;
        };
        let record = match parse_domain(text) {
            Ok(d) => d,
            Err(msg) => {
                ctx.err(o.file, &path.key("delegation_record"), msg);
                return;
            }
        };
        let id = self.rule_id(ctx, o, path, r, &record, "Delegate");
        let vpcs = self.vpc_refs(ctx, o, &path.key("vpcs"), r.vpcs.as_deref());
        let Some(key) = &r.outbound_endpoint else {
            ctx.err(o.file, path, "a delegate rule needs `outbound_endpoint` (AWS requires the ResolverEndpointId): the delegated queries leave through it");
            return;
        };
        let Some(outbound) =
            self.resolver_endpoint_ref(ctx, o, &path.key("outbound_endpoint"), key, false)
        else {
            return;
        };
        for other in &self.topo.delegations {
            if other.record == record && other.vpcs.iter().any(|v| vpcs.contains(v)) {
                ctx.err(o.file, &path.key("delegation_record"), format!("delegate rule {} for {record} is already associated with a VPC this rule names; a VPC has one rule per domain", other.id));
            }
        }
        self.topo.delegations.push(Delegation {
            id,
            record,
            vpcs,
            outbound,
        });
    }

    fn rule_id(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        r: &raw::Rule,
        domain: &Name,
        kind: &str,
    ) -> String {
        let id = match &r.id {
            Some(id) if valid_id(id, "rslvr-rr-") => id.clone(),
            Some(id) => {
                ctx.err(
                    o.file,
                    &path.key("id"),
                    format!("malformed rule id `{id}`; {}", id_hint("rslvr-rr-")),
                );
                id.clone()
            }
            None => derived_id("rslvr-rr-", &["rule", &domain.to_string(), kind]),
        };
        self.claim_id(ctx, o, &path.key("id"), &id);
        id
    }

    /// The outbound endpoint as written; forward rules without one use the only one among the rule's VPCs.
    fn rule_outbound(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        r: &raw::Rule,
        kind: RuleKind,
        vpcs: &[usize],
    ) -> Option<usize> {
        if let Some(key) = &r.outbound_endpoint {
            return self.resolver_endpoint_ref(ctx, o, &path.key("outbound_endpoint"), key, false);
        }
        if kind != RuleKind::Forward {
            return None;
        }
        let mut found = self
            .topo
            .outbound_endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| vpcs.contains(&e.vpc));
        match (found.next(), found.next()) {
            (Some((idx, _)), None) => Some(idx),
            _ => None,
        }
    }

    /// AWS warns: forwarding to an inbound endpoint of a VPC the rule is associated with loops.
    fn check_rule_loops(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        targets: &[SocketAddr],
        vpcs: &[usize],
    ) {
        for (j, t) in targets.iter().enumerate() {
            for inbound in &self.topo.inbound_endpoints {
                if inbound.ips.contains(&t.ip()) && vpcs.contains(&inbound.vpc) {
                    ctx.err(o.file, &path.key("targets").index(j), format!("target {} is inbound endpoint {} of {}, which this rule is associated with: queries would loop; associate the rule with other VPCs only", t.ip(), inbound.id, self.topo.vpcs[inbound.vpc].id));
                }
            }
        }
    }

    pub(super) fn networks(&mut self, ctx: &mut Ctx<'_>) {
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.networks.iter().enumerate() {
                let path = YamlPath::default().key("networks").index(i);
                let Some(n) = o
                    .file
                    .item::<raw::Network>(&item.value, &path, &mut ctx.diags)
                else {
                    continue;
                };
                let cidrs = n
                    .cidrs
                    .iter()
                    .enumerate()
                    .filter_map(|(j, t)| {
                        parse_net(t)
                            .map_err(|m| ctx.err(o.file, &path.key("cidrs").index(j), m))
                            .ok()
                    })
                    .collect();
                let via_inbound = match &n.via_inbound_endpoint {
                    Some(key) => match self.resolver_endpoint_ref(
                        ctx,
                        o,
                        &path.key("via_inbound_endpoint"),
                        key,
                        true,
                    ) {
                        Some(idx) => Some(idx),
                        None => continue,
                    },
                    None => None,
                };
                self.topo.networks.push(Network {
                    name: n.name.clone(),
                    cidrs,
                    via_inbound,
                });
            }
        }
    }
}

fn rule_targets(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    r: &raw::Rule,
    kind: RuleKind,
) -> Vec<SocketAddr> {
    let mut targets = Vec::new();
    for (j, t) in r.targets.iter().enumerate() {
        match parse_target(t) {
            Ok(a) => targets.push(a),
            Err(msg) => ctx.err(o.file, &path.key("targets").index(j), msg),
        }
    }
    match kind {
        RuleKind::Forward if r.targets.is_empty() => ctx.err(
            o.file,
            path,
            "a forward rule needs `targets`, e.g. [\"192.168.10.10\"]",
        ),
        RuleKind::System if !r.targets.is_empty() => ctx.err(
            o.file,
            &path.key("targets"),
            "a system rule has no targets: the Resolver answers itself; remove `targets`",
        ),
        _ => {}
    }
    targets
}

/// A resolver endpoint's `protocols`: AWS spellings in any case, default `[Do53]`, at least one.
fn endpoint_protocols(
    ctx: &mut Ctx<'_>,
    file: &SourceFile,
    path: &YamlPath,
    list: Option<&[String]>,
) -> Vec<EndpointProtocol> {
    let Some(list) = list else {
        return vec![EndpointProtocol::Do53];
    };
    let mut out = Vec::new();
    for (j, text) in list.iter().enumerate() {
        match EndpointProtocol::parse(text) {
            Some(p) if !out.contains(&p) => out.push(p),
            Some(_) => {}
            None => ctx.err(
                file,
                &path.key("protocols").index(j),
                format!("unknown protocol `{text}`; write Do53, DoH or DoH-FIPS"),
            ),
        }
    }
    if list.is_empty() {
        ctx.err(
            file,
            &path.key("protocols"),
            "an endpoint needs at least one protocol; write e.g. [Do53] or [Do53, DoH]",
        );
    }
    if out.is_empty() {
        out.push(EndpointProtocol::Do53);
    }
    out
}
