//! `profiles:`: Route 53 Profiles and what they carry, validated as the route53profiles API does (reference §12.2).

use super::*;

impl Builder<'_> {
    pub(super) fn profiles(&mut self, ctx: &mut Ctx<'_>) {
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.profiles.iter().enumerate() {
                let path = YamlPath::default().key("profiles").index(i);
                let Some(p) = o
                    .file
                    .item::<raw::Profile>(&item.value, &path, &mut ctx.diags)
                else {
                    continue;
                };
                self.profile(ctx, o, &path, &p);
            }
        }
        self.check_firewall_associations(ctx);
    }

    fn profile(&mut self, ctx: &mut Ctx<'_>, o: Origin<'_>, path: &YamlPath, p: &raw::Profile) {
        let index = self.topo.profiles.len();
        let id = self.profile_id(ctx, o, path, p);
        let vpcs = self.profile_vpcs(ctx, o, &path.key("vpcs"), &p.vpcs);
        let hosted_zones = p
            .hosted_zones
            .iter()
            .enumerate()
            .filter_map(|(j, key)| self.zone_ref(ctx, o, &path.key("hosted_zones").index(j), key))
            .collect();
        let (rules, delegations) = self.profile_rules(ctx, o, &path.key("rules"), &p.rules);
        let endpoints = p
            .endpoints
            .iter()
            .enumerate()
            .filter_map(|(j, key)| {
                self.profile_endpoint(ctx, o, &path.key("endpoints").index(j), key)
            })
            .collect();
        let mut priorities: Vec<u32> = Vec::new();
        for (j, g) in p.firewall_rule_groups.iter().enumerate() {
            let gp = path.key("firewall_rule_groups").index(j);
            let group = self.rule_group_ref(ctx, o, &gp.key("rule_group"), &g.rule_group);
            let priority = firewall::association_priority(ctx, o, &gp.key("priority"), g.priority);
            if let (Some(rule_group), Some(priority)) = (group, priority) {
                if priorities.contains(&priority) {
                    ctx.err(o.file, &gp.key("priority"), format!("another rule group of this Profile has priority {priority}; write a unique one from 100 to 9900"));
                    continue;
                }
                priorities.push(priority);
                self.topo.firewall.associations.push(FirewallAssociation {
                    rule_group,
                    target: AssociatedWith::Profile(index),
                    priority,
                });
                self.fw_assoc_paths.push((o.idx, gp));
            }
        }
        self.topo.profiles.push(Profile {
            id,
            name: p.name.clone(),
            vpcs,
            hosted_zones,
            rules,
            delegations,
            endpoints,
        });
    }

    /// `rp-` and 16 hex digits (Profile ids are not the 8-or-17 form of other ids).
    fn profile_id(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        p: &raw::Profile,
    ) -> String {
        let id = match &p.id {
            Some(id) if is_profile_id(id) => id.clone(),
            Some(id) => {
                ctx.err(o.file, &path.key("id"), format!("malformed Profile id `{id}`; write `rp-` followed by 16 lowercase hex digits, e.g. `rp-0a0b0c0d0e0f0001`, or leave it out for a derived one"));
                id.clone()
            }
            None => {
                let seed = p.name.clone().unwrap_or_else(|| path.to_string());
                format!("rp-{:016x}", stable_hash(&["profile", &seed]))
            }
        };
        self.claim_id(ctx, o, &path.key("id"), &id);
        id
    }

    /// A VPC has at most one Profile (AssociateProfile rejects a second).
    fn profile_vpcs(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        list: &[String],
    ) -> Vec<usize> {
        let mut vpcs = Vec::new();
        for (j, key) in list.iter().enumerate() {
            let Some(vpc) = self.lookup_vpc(ctx, o, &path.index(j), Some(key)) else {
                continue;
            };
            if let Some(other) = self.topo.profiles.iter().find(|p| p.vpcs.contains(&vpc)) {
                ctx.err(
                    o.file,
                    &path.index(j),
                    format!(
                        "{} is already associated with Profile {}; a VPC can have only one Profile",
                        self.topo.vpcs[vpc].id, other.id
                    ),
                );
                continue;
            }
            if !vpcs.contains(&vpc) {
                vpcs.push(vpc);
            }
        }
        vpcs
    }

    /// A private hosted zone by id, or by name when one zone has it.
    fn zone_ref(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        key: &str,
    ) -> Option<usize> {
        let zones = &self.topo.hosted_zones;
        if let Some(i) = zones.iter().position(|z| z.id == key) {
            return Some(i);
        }
        let name = parse_domain(key).ok();
        let named: Vec<usize> = zones
            .iter()
            .enumerate()
            .filter(|(_, z)| Some(&z.name) == name.as_ref())
            .map(|(i, _)| i)
            .collect();
        match named.as_slice() {
            [one] => Some(*one),
            [] => {
                if !ctx.broken_ids.contains(key) {
                    let list: Vec<String> = zones
                        .iter()
                        .map(|z| format!("{} ({})", z.id, z.name))
                        .collect();
                    ctx.err(o.file, path, format!("unknown hosted zone `{key}`; write the name or id of one under `hosted_zones` ({})", list.join(", ")));
                }
                None
            }
            _ => {
                ctx.err(
                    o.file,
                    path,
                    format!("several hosted zones are named `{key}`; write the id of one"),
                );
                None
            }
        }
    }

    /// Rule ids: forward and system rules, and delegate rules.
    fn profile_rules(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        list: &[String],
    ) -> (Vec<usize>, Vec<usize>) {
        let mut rules = Vec::new();
        let mut delegations = Vec::new();
        for (j, key) in list.iter().enumerate() {
            if let Some(i) = self.topo.rules.iter().position(|r| &r.id == key) {
                rules.push(i);
            } else if let Some(i) = self.topo.delegations.iter().position(|d| &d.id == key) {
                delegations.push(i);
            } else if !ctx.broken_ids.contains(key) {
                let ids: Vec<&str> = self
                    .topo
                    .rules
                    .iter()
                    .map(|r| r.id.as_str())
                    .chain(self.topo.delegations.iter().map(|d| d.id.as_str()))
                    .collect();
                ctx.err(
                    o.file,
                    &path.index(j),
                    format!(
                        "unknown rule `{key}`; write the id of one under `resolver.rules` ({})",
                        ids.join(", ")
                    ),
                );
            }
        }
        (rules, delegations)
    }

    /// An interface endpoint with private DNS on: its private DNS names then answer in the Profile's VPCs.
    fn profile_endpoint(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        key: &str,
    ) -> Option<usize> {
        let Some(i) = self.topo.endpoints.iter().position(|e| e.id == key) else {
            if !ctx.broken_ids.contains(key) {
                ctx.err(o.file, path, format!("unknown endpoint `{key}`; write the id of an interface endpoint under `endpoints`"));
            }
            return None;
        };
        let e = &self.topo.endpoints[i];
        if e.kind != EndpointKind::Interface {
            ctx.err(
                o.file,
                path,
                format!(
                    "{key} is not an interface endpoint; a Profile carries interface endpoints only"
                ),
            );
            return None;
        }
        if !e.private_dns {
            ctx.err(o.file, path, format!("{key} has private DNS off; a Profile shares an endpoint's private DNS names, so write `private_dns: true` on it"));
            return None;
        }
        Some(i)
    }
}

fn is_profile_id(id: &str) -> bool {
    id.strip_prefix("rp-").is_some_and(|hex| {
        hex.len() == 16
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}
