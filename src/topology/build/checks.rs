//! Checks that need the whole topology: `default_view`, S3 inbound-only defaults, private DNS name conflicts.

use super::*;

impl Builder<'_> {
    pub(super) fn default_view(&mut self, ctx: &mut Ctx<'_>) {
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            match raw.default_view.as_deref() {
                None => {}
                Some("public") => self.topo.default_view = ViewRef::Public,
                Some(key) => {
                    if let Some(v) =
                        self.lookup_vpc(ctx, o, &YamlPath::default().key("default_view"), Some(key))
                    {
                        self.topo.default_view = ViewRef::Vpc(v);
                    }
                }
            }
        }
    }

    pub(super) fn cross_checks(&mut self, ctx: &mut Ctx<'_>) {
        // AWS's default for S3 private DNS: inbound-only when the VPC has an S3 gateway endpoint.
        let has_s3_gateway = |topo: &Topology, vpc: usize| {
            topo.endpoints
                .iter()
                .any(|g| g.vpc == vpc && g.kind == EndpointKind::Gateway && g.service.code == "s3")
        };
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (idx, (file_idx, path)) in self.endpoint_paths.iter().enumerate() {
            let o = origins[*file_idx];
            let e = &self.topo.endpoints[idx];
            let explicit = self.raws[*file_idx]
                .endpoints
                .get(path_index(path))
                .and_then(|i| {
                    i.value
                        .get("private_dns_only_for_inbound_resolver_endpoint")
                })
                .and_then(|v| v.as_bool());
            let gateway = has_s3_gateway(&self.topo, e.vpc);
            match explicit {
                Some(true) if !gateway => ctx.err(o.file, &path.key("private_dns_only_for_inbound_resolver_endpoint"), format!("private DNS only for inbound Resolver endpoints needs an S3 gateway endpoint in {} (AWS rejects it otherwise); add `{{ service: s3, type: gateway }}` or remove this", self.topo.vpcs[e.vpc].id)),
                None if e.inbound_only && !gateway => self.topo.endpoints[idx].inbound_only = false,
                _ => {}
            }
        }
        // One private DNS name per VPC: two endpoints, or an endpoint and a private hosted zone, conflict.
        let mut owners: HashMap<(usize, String), usize> = HashMap::new();
        for (idx, e) in self.topo.endpoints.iter().enumerate() {
            if !e.private_dns {
                continue;
            }
            let (file_idx, path) = &self.endpoint_paths[idx];
            let o = origins[*file_idx];
            for name in &e.service.private_dns_names {
                let zone = name.trim_start_matches("*.").to_string();
                if let Some(other) = owners.insert((e.vpc, zone.clone()), idx)
                    && other != idx
                {
                    ctx.err(o.file, &path.key("private_dns"), format!("private DNS cannot be enabled: there is already a conflicting DNS domain for {zone} in {} (endpoint {}); AWS allows one private-DNS endpoint per service per VPC, so write `private_dns: false` on one", self.topo.vpcs[e.vpc].id, self.topo.endpoints[other].id));
                    break;
                }
            }
        }
        for (zi, z) in self.topo.hosted_zones.iter().enumerate() {
            let zname = z.name.to_string();
            let zname = zname.trim_end_matches('.');
            for &vpc in &z.vpcs {
                if let Some(&idx) = owners.get(&(vpc, zname.to_string())) {
                    let (file_idx, path) = self.zone_origin(zi, ctx);
                    let path = path.key("name");
                    let file = &ctx.files[file_idx];
                    let msg = format!(
                        "ConflictingDomainExists: {} already has the private DNS zone {zname} of endpoint {} (private DNS on); turn its private DNS off (the centralized-endpoint pattern) or don't associate this zone with that VPC",
                        self.topo.vpcs[vpc].id, self.topo.endpoints[idx].id
                    );
                    ctx.diags.push(file.at(&path, msg));
                }
                for other in &self.topo.hosted_zones[..zi] {
                    if other.name == z.name && other.vpcs.contains(&vpc) {
                        let (file_idx, path) = self.zone_origin(zi, ctx);
                        let path = path.key("name");
                        let file = &ctx.files[file_idx];
                        ctx.diags.push(file.at(&path, format!("{} is already associated with another hosted zone named {zname}; a VPC can't have two zones of one name", self.topo.vpcs[vpc].id)));
                    }
                }
            }
        }
    }

    /// The file and path of the `zi`-th hosted zone, counted across files.
    pub(super) fn zone_origin(&self, zi: usize, ctx: &Ctx<'_>) -> (usize, YamlPath) {
        let mut left = zi;
        for (f, raw) in self.raws.iter().enumerate().take(ctx.files.len()) {
            if left < raw.hosted_zones.len() {
                return (f, YamlPath::default().key("hosted_zones").index(left));
            }
            left -= raw.hosted_zones.len();
        }
        (0, YamlPath::default())
    }
}

pub(super) fn path_index(path: &YamlPath) -> usize {
    match path.0.get(1) {
        Some(super::source::Seg::Index(i)) => *i,
        _ => usize::MAX,
    }
}
