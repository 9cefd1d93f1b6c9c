//! `services:` and `endpoints:`.

use super::*;

impl Builder<'_> {
    /// Topology `services:` entries, keyed by the names an endpoint may use for them.
    pub(super) fn services(&mut self, ctx: &mut Ctx<'_>) -> HashMap<String, Service> {
        let mut out = HashMap::new();
        let region = self.topo.region.clone();
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.services.iter().enumerate() {
                let path = YamlPath::default().key("services").index(i);
                let Some(s) = o
                    .file
                    .item::<raw::Service>(&item.value, &path, &mut ctx.diags)
                else {
                    continue;
                };
                let mut names = Vec::new();
                for (j, n) in s.private_dns_names.iter().enumerate() {
                    let bare = n.strip_prefix("*.").unwrap_or(n);
                    match parse_domain(bare) {
                        Ok(_) => names.push(n.trim_end_matches('.').to_lowercase()),
                        Err(msg) => ctx.err(o.file, &path.key("private_dns_names").index(j), msg),
                    }
                }
                let (code, svc_id) = if let Some((svc_region, svc)) =
                    catalog::parse_endpoint_service_name(&s.name)
                {
                    // Another Region's endpoint service is reached by a cross-Region endpoint (`service_region`).
                    let _ = svc_region;
                    (svc.to_string(), svc.to_string())
                } else {
                    let code = s
                        .name
                        .strip_prefix(&format!("com.amazonaws.{region}."))
                        .unwrap_or(&s.name)
                        .to_string();
                    let reversed: Vec<&str> = code.rsplit('.').collect();
                    (code.clone(), reversed.join("."))
                };
                let service = Service {
                    name: s.name.clone(),
                    code: code.clone(),
                    endpoint_service_id: s.endpoint_service_id.clone().unwrap_or(svc_id),
                    private_dns_names: names,
                    interface: true,
                    gateway: false,
                    evidence: Evidence::User,
                    note: "defined in the topology".into(),
                };
                out.insert(s.name.clone(), service.clone());
                out.insert(code, service);
            }
        }
        out
    }

    pub(super) fn endpoints(
        &mut self,
        ctx: &mut Ctx<'_>,
        services: &HashMap<String, Service>,
    ) -> Vec<PendingIp> {
        let mut pending = Vec::new();
        // Thousands of endpoints name a few dozen services: look each up once.
        let mut lookups = ServiceLookups {
            topology: services,
            catalog: HashMap::new(),
        };
        let origins: Vec<_> = Self::origins(ctx).collect();
        for (o, raw) in origins.into_iter().zip(self.raws) {
            for (i, item) in raw.endpoints.iter().enumerate() {
                let path = YamlPath::default().key("endpoints").index(i);
                let Some(e) = raw_endpoint(ctx, o, &path, &item.value) else {
                    note_broken(ctx, &item.value);
                    continue;
                };
                if let Some(endpoint) = self.endpoint(ctx, o, &path, &e, &mut lookups, &mut pending)
                {
                    self.topo.endpoints.push(endpoint);
                    self.endpoint_paths.push((o.idx, path));
                }
            }
        }
        pending
    }

    fn endpoint(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        e: &raw::Endpoint,
        lookups: &mut ServiceLookups<'_>,
        pending: &mut Vec<PendingIp>,
    ) -> Option<Endpoint> {
        let vpc = self.lookup_vpc(ctx, o, &path.key("vpc"), e.vpc.as_deref())?;
        let kind = endpoint_kind(ctx, o, &path.key("type"), e.kind.as_deref())?;
        let service_region = self.service_region(ctx, o, path, e, kind)?;
        let service = self.endpoint_service(ctx, o, path, e, service_region.as_deref(), lookups)?;
        if kind == EndpointKind::Gateway && !service.gateway {
            ctx.err(o.file, &path.key("type"), format!("gateway endpoints exist only for S3 and DynamoDB, not `{}`; use `type: interface`", service.code));
        }
        let id = self.endpoint_id(ctx, o, path, e, vpc, &service, kind);
        let dns_suffix = endpoint_suffix(ctx, o, &path.key("dns_suffix"), e, &id);
        let private_dns = self.endpoint_private_dns(ctx, o, path, e, vpc, &service, kind);
        let inbound_only = inbound_only(ctx, o, path, e, &service, kind, private_dns);
        let (ip_address_type, dns_record_ip_type) = endpoint_ip_types(ctx, o, path, e);
        let owner = self.topo.endpoints.len();
        let shape = EniShape {
            owner,
            id: &id,
            vpc,
            kind,
            ip_address_type,
        };
        let enis = self.endpoint_enis(ctx, o, path, e, &shape, pending);
        Some(Endpoint {
            id,
            vpc,
            service,
            kind,
            private_dns,
            inbound_only,
            ip_address_type,
            dns_record_ip_type,
            dns_suffix,
            enis,
            route_tables: e.route_tables.clone().unwrap_or_default(),
            service_region,
        })
    }

    /// `service_region` (reference §12.4): `None` for the topology's own region. A full service name carries its
    /// region, which must be the service region; only endpoint services and the AWS services AWS offers
    /// cross-Region may be in another region, through interface endpoints.
    fn service_region(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        e: &raw::Endpoint,
        kind: EndpointKind,
    ) -> Option<Option<String>> {
        let region = &self.topo.region;
        let written = e.service_region.as_deref();
        if let Some(r) = written
            && !catalog::is_known_region(r)
        {
            ctx.err(o.file, &path.key("service_region"), format!("unknown region `{r}`; write an AWS region name such as `us-west-2`, or leave it out for the topology's region ({region})"));
            return None;
        }
        let named = catalog::parse_endpoint_service_name(&e.service)
            .map(|(r, _)| r)
            .or_else(|| full_name_region(&e.service));
        let service_region = written.unwrap_or(region);
        if let Some(named) = named
            && named != service_region
        {
            let msg = match written {
                None => format!(
                    "service `{}` is in region `{named}` but the topology's region is `{region}`; for a cross-Region endpoint add `service_region: {named}`, else write `com.amazonaws.{region}.…` or the short name",
                    e.service
                ),
                Some(r) => format!(
                    "service `{}` is in region `{named}`, not the `service_region` {r}; make them the same",
                    e.service
                ),
            };
            ctx.err(o.file, &path.key("service"), msg);
            return None;
        }
        if service_region == region {
            return Some(None);
        }
        if kind != EndpointKind::Interface {
            ctx.err(o.file, &path.key("service_region"), "only interface endpoints reach another Region; remove `service_region` or write `type: interface`");
            return None;
        }
        let code = e
            .service
            .rsplit_once(&format!("{service_region}."))
            .map_or(e.service.as_str(), |(_, c)| c);
        let endpoint_service = catalog::parse_endpoint_service_name(&e.service).is_some()
            || e.service.starts_with("vpce-svc-");
        if !endpoint_service && !CROSS_REGION_SERVICES.contains(&code) {
            ctx.err(o.file, &path.key("service_region"), format!("AWS offers `{code}` only in its own Region, not cross-Region (AWS services with cross-Region access: {}); remove `service_region` or use an endpoint service", CROSS_REGION_SERVICES.join(", ")));
            return None;
        }
        Some(Some(service_region.to_string()))
    }

    fn endpoint_service(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        e: &raw::Endpoint,
        service_region: Option<&str>,
        lookups: &mut ServiceLookups<'_>,
    ) -> Option<Service> {
        let region = service_region.unwrap_or(&self.topo.region);
        if let Some(found) = lookups.find(&e.service, region) {
            return Some(found);
        }
        let msg = match catalog::parse_endpoint_service_name(&e.service) {
            Some(_) => format!(
                "endpoint service `{}` is not defined; add it under `services:` with its `private_dns_names`",
                e.service
            ),
            None => format!(
                "unknown service `{}`; `vpc-resolver services {}` lists the catalog, or define it under `services:`",
                e.service,
                e.service.rsplit('.').next().unwrap_or("")
            ),
        };
        ctx.err(o.file, &path.key("service"), msg);
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn endpoint_id(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        e: &raw::Endpoint,
        vpc: usize,
        service: &Service,
        kind: EndpointKind,
    ) -> String {
        let id = match &e.id {
            Some(id) if valid_id(id, "vpce-") => id.clone(),
            Some(id) => {
                ctx.err(
                    o.file,
                    &path.key("id"),
                    format!("malformed endpoint id `{id}`; {}", id_hint("vpce-")),
                );
                id.clone()
            }
            None => derived_id(
                "vpce-",
                &[
                    "vpce",
                    &self.topo.vpcs[vpc].id,
                    &service.name,
                    &format!("{kind:?}"),
                ],
            ),
        };
        self.claim_id(ctx, o, &path.key("id"), &id);
        id
    }

    /// `private_dns` as written, else AWS's default: on for AWS services with a private name, off for S3 (the
    /// console leaves it unticked) and for endpoint services.
    #[allow(clippy::too_many_arguments)]
    fn endpoint_private_dns(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        e: &raw::Endpoint,
        vpc: usize,
        service: &Service,
        kind: EndpointKind,
    ) -> bool {
        let v = &self.topo.vpcs[vpc];
        let has_private_names = !service.private_dns_names.is_empty();
        let attrs_on = v.dns_support && v.dns_hostnames;
        let p = path.key("private_dns");
        match (kind, e.private_dns) {
            (EndpointKind::Interface, Some(true)) => {
                if !has_private_names {
                    ctx.err(o.file, &p, format!("service `{}` does not provide a private DNS name, so private DNS can't be enabled (AWS rejects it); write `private_dns: false` and use the vpce names", service.name));
                } else if !attrs_on {
                    ctx.err(o.file, &p, format!("enabling private DNS requires both enable_dns_support and enable_dns_hostnames on {} (AWS rejects it); set both to true or write `private_dns: false`", v.id));
                }
                true
            }
            (EndpointKind::Interface, Some(false)) => false,
            (EndpointKind::Interface, None) => {
                has_private_names
                    && service.code != "s3"
                    && service.evidence != Evidence::User
                    && attrs_on
            }
            (_, Some(true)) => {
                ctx.err(
                    o.file,
                    &p,
                    "only interface endpoints have private DNS; remove `private_dns`",
                );
                false
            }
            (_, _) => false,
        }
    }

    fn endpoint_enis(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        e: &raw::Endpoint,
        shape: &EniShape<'_>,
        pending: &mut Vec<PendingIp>,
    ) -> Vec<Eni> {
        if shape.kind == EndpointKind::Gateway {
            if e.enis.is_some() || e.subnets.is_some() {
                ctx.err(
                    o.file,
                    &path.key("enis"),
                    "gateway endpoints have no network interfaces; remove `enis`/`subnets`",
                );
            }
            return Vec::new();
        }
        let wanted = self.wanted_enis(path, e, shape);
        let listed = e.enis.as_ref().map_or(0, Vec::len) + e.subnets.as_ref().map_or(0, Vec::len);
        let mut azs_seen: HashSet<String> = HashSet::new();
        let mut enis = Vec::new();
        for (x, ep) in wanted {
            let Some(subnet) = self.eni_subnet(ctx, o, &ep, shape.vpc, &x.subnet) else {
                continue;
            };
            let s = self.topo.vpcs[shape.vpc].subnets[subnet].clone();
            if !azs_seen.insert(s.az.clone()) {
                ctx.err(o.file, &ep, format!("a second ENI in {}: an endpoint has at most one network interface per Availability Zone; pick a subnet in another AZ", s.az));
            }
            let outside4 =
                x.reported && parsed::<Ipv4Addr>(&x.ip).is_some_and(|ip| !s.cidr.contains(&ip));
            let outside6 = x.reported
                && parsed::<Ipv6Addr>(&x.ipv6)
                    .is_some_and(|v6| !s.ipv6_cidr.is_some_and(|c| c.contains(&v6)));
            let ip = if outside4 {
                self.reported_ip(
                    ctx,
                    o,
                    &ep.key("ip"),
                    parsed::<Ipv4Addr>(&x.ip).map(IpAddr::V4),
                );
                parsed(&x.ip)
            } else {
                self.eni_ipv4(ctx, o, &ep, shape, &s, x.ip.as_deref(), enis.len(), pending)
            };
            let ipv6 = if outside6 {
                self.reported_ip(
                    ctx,
                    o,
                    &ep.key("ipv6"),
                    parsed::<Ipv6Addr>(&x.ipv6).map(IpAddr::V6),
                );
                parsed(&x.ipv6)
            } else {
                self.eni_ipv6(ctx, o, &ep, shape, &s, x.ipv6.as_deref())
            };
            enis.push(Eni {
                subnet,
                az: s.az.clone(),
                ip,
                ipv6,
            });
        }
        // Listed ENIs that all failed are reported each; this is only for a VPC without subnets.
        if enis.is_empty() && listed == 0 && shape.kind == EndpointKind::Interface {
            ctx.err(o.file, path, format!("endpoint has no network interface: VPC {} has no subnets; add subnets to the VPC or `enis` here", self.topo.vpcs[shape.vpc].id));
        }
        enis
    }

    /// `enis`, or `subnets`, or by default one ENI in the first listed subnet of each AZ (one in all for GWLB).
    fn wanted_enis(
        &self,
        path: &YamlPath,
        e: &raw::Endpoint,
        shape: &EniShape<'_>,
    ) -> Vec<(raw::Eni, YamlPath)> {
        let eni = |subnet: &str, ip: Option<&String>, ipv6: Option<&String>| raw::Eni {
            subnet: subnet.to_string(),
            ip: ip.cloned(),
            ipv6: ipv6.cloned(),
            reported: false,
        };
        match (&e.enis, &e.subnets) {
            (Some(list), _) => list
                .iter()
                .enumerate()
                .map(|(j, x)| {
                    let item = raw::Eni {
                        reported: x.reported,
                        ..eni(&x.subnet, x.ip.as_ref(), x.ipv6.as_ref())
                    };
                    (item, path.key("enis").index(j))
                })
                .collect(),
            (None, Some(list)) => list
                .iter()
                .enumerate()
                .map(|(j, s)| (eni(s, None, None), path.key("subnets").index(j)))
                .collect(),
            (None, None) => {
                let v = &self.topo.vpcs[shape.vpc];
                let take = if shape.kind == EndpointKind::GatewayLoadBalancer {
                    1
                } else {
                    usize::MAX
                };
                first_subnet_per_az(v)
                    .into_iter()
                    .take(take)
                    .map(|si| (eni(&v.subnets[si].id, None, None), path.clone()))
                    .collect()
            }
        }
    }

    /// A subnet named by id, or by its AZ (`a` or `us-east-1a`: the first subnet there).
    pub(super) fn eni_subnet(
        &self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        ep: &YamlPath,
        vpc: usize,
        key: &str,
    ) -> Option<usize> {
        let v = &self.topo.vpcs[vpc];
        let found = v.subnets.iter().position(|s| s.id == key).or_else(|| {
            let az = normalize_az(&self.topo.region, key).ok()?;
            v.subnets.iter().position(|s| s.az == az)
        });
        if found.is_none() && !ctx.broken_ids.contains(key) {
            let list: Vec<&str> = v.subnets.iter().map(|s| s.id.as_str()).collect();
            ctx.err(
                o.file,
                &ep.key("subnet"),
                format!(
                    "unknown subnet `{key}` in {}; write one of: {}",
                    v.id,
                    list.join(", ")
                ),
            );
        }
        found
    }

    /// An address the account reported outside its subnet (`reported: true`, from `import aws --keep-reported`):
    /// AWS never assigns one, moto does, and an imported topology keeps what the account says so DNS matches it.
    /// Only uniqueness is checked.
    fn reported_ip(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        ip: Option<IpAddr>,
    ) {
        if let Some(ip) = ip
            && !self.used_ips.insert(ip)
        {
            ctx.err(o.file, path, format!("{ip} is already used by another ENI or resolver endpoint; each address belongs to one interface"));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eni_ipv4(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        ep: &YamlPath,
        shape: &EniShape<'_>,
        subnet: &Subnet,
        text: Option<&str>,
        slot: usize,
        pending: &mut Vec<PendingIp>,
    ) -> Option<Ipv4Addr> {
        let Some(text) = text else {
            if shape.ip_address_type == IpType::Ipv6 {
                return None;
            }
            pending.push(PendingIp {
                slot: Slot::Eni(shape.owner, slot),
                subnet: subnet.cidr,
                seed: format!("{}/{}", shape.id, subnet.id),
            });
            return Some(Ipv4Addr::UNSPECIFIED);
        };
        let Ok(ip) = text.parse::<Ipv4Addr>() else {
            ctx.err(
                o.file,
                &ep.key("ip"),
                format!(
                    "`{text}` is not an IPv4 address; write e.g. {}",
                    nth_host(subnet.cidr, 10)
                ),
            );
            return None;
        };
        if !subnet.cidr.contains(&ip) {
            ctx.err(
                o.file,
                &ep.key("ip"),
                format!(
                    "{ip} is outside subnet {} ({}); write an address inside it, e.g. {}",
                    subnet.id,
                    subnet.cidr,
                    nth_host(subnet.cidr, 10)
                ),
            );
        } else {
            self.check_ip(ctx, o, &ep.key("ip"), shape.vpc, IpAddr::V4(ip));
        }
        Some(ip)
    }

    fn eni_ipv6(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        ep: &YamlPath,
        shape: &EniShape<'_>,
        subnet: &Subnet,
        text: Option<&str>,
    ) -> Option<Ipv6Addr> {
        let Some(text) = text else {
            // Dual-stack and IPv6 endpoints get a deterministic address of the subnet by default.
            if shape.ip_address_type == IpType::Ipv4 {
                return None;
            }
            return match subnet.ipv6_cidr {
                Some(c) => Some(v6_host(c, stable_hash(&[shape.id, &subnet.id]) % 4000 + 16)),
                None => {
                    ctx.err(
                        o.file,
                        ep,
                        format!(
                            "ip_address_type {} needs IPv6 on subnet {}; give it an `ipv6_cidr`",
                            ip_type_name(shape.ip_address_type),
                            subnet.id
                        ),
                    );
                    None
                }
            };
        };
        self.explicit_ipv6(ctx, o, &ep.key("ipv6"), subnet, text)
    }

    /// An explicit IPv6 address of an interface: inside the subnet's IPv6 CIDR and not taken.
    pub(super) fn explicit_ipv6(
        &mut self,
        ctx: &mut Ctx<'_>,
        o: Origin<'_>,
        path: &YamlPath,
        subnet: &Subnet,
        text: &str,
    ) -> Option<Ipv6Addr> {
        let Ok(v6) = text.parse::<Ipv6Addr>() else {
            ctx.err(o.file, path, format!("`{text}` is not an IPv6 address"));
            return None;
        };
        if !subnet.ipv6_cidr.is_some_and(|c| c.contains(&v6)) {
            ctx.err(o.file, path, format!("{v6} is outside subnet {}'s IPv6 CIDR ({}); give the subnet an `ipv6_cidr` that contains it", subnet.id, subnet.ipv6_cidr.map_or("none".into(), |c| c.to_string())));
            return None;
        }
        if !self.used_ips.insert(IpAddr::V6(v6)) {
            ctx.err(
                o.file,
                path,
                format!("{v6} is already used by another interface"),
            );
        }
        Some(v6)
    }
}

/// AWS services AWS offers through cross-Region interface endpoints (reference §12.4, 2025 list).
const CROSS_REGION_SERVICES: &[&str] = &[
    "s3",
    "iam",
    "ecr.api",
    "ecr.dkr",
    "kms",
    "kms-fips",
    "ecs",
    "lambda",
    "kinesis-firehose",
    "kinesisanalytics",
    "kinesisanalytics-fips",
    "route53",
];

/// Services named by endpoints: the topology's `services:` first, then the catalog (memoized per region).
struct ServiceLookups<'s> {
    topology: &'s HashMap<String, Service>,
    catalog: HashMap<(String, String), Option<Service>>,
}

impl ServiceLookups<'_> {
    fn find(&mut self, service: &str, region: &str) -> Option<Service> {
        if let Some(s) = self.topology.get(service) {
            return Some(s.clone());
        }
        self.catalog
            .entry((service.to_string(), region.to_string()))
            .or_insert_with(|| Catalog::embedded().resolve(service, region))
            .clone()
    }
}

/// What an endpoint's ENIs are built for.
struct EniShape<'a> {
    owner: usize,
    id: &'a str,
    vpc: usize,
    kind: EndpointKind,
    ip_address_type: IpType,
}

/// An endpoint item: a full mapping, or just a service name.
fn raw_endpoint(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    value: &serde_norway::Value,
) -> Option<raw::Endpoint> {
    if let serde_norway::Value::String(service) = value {
        return Some(raw::Endpoint {
            id: None,
            vpc: None,
            service: service.clone(),
            kind: None,
            private_dns: None,
            private_dns_only_for_inbound_resolver_endpoint: None,
            ip_address_type: None,
            dns_record_ip_type: None,
            dns_suffix: None,
            enis: None,
            subnets: None,
            route_tables: None,
            service_region: None,
        });
    }
    o.file.item::<raw::Endpoint>(value, path, &mut ctx.diags)
}

fn endpoint_kind(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    text: Option<&str>,
) -> Option<EndpointKind> {
    let Some(text) = text else {
        return Some(EndpointKind::Interface);
    };
    match text.to_ascii_lowercase().as_str() {
        "interface" => Some(EndpointKind::Interface),
        "gateway" => Some(EndpointKind::Gateway),
        "gatewayloadbalancer" | "gwlb" => Some(EndpointKind::GatewayLoadBalancer),
        _ => {
            ctx.err(o.file, path, format!("unknown endpoint type `{text}`; write `interface`, `gateway` or `gatewayloadbalancer`"));
            None
        }
    }
}

fn endpoint_suffix(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    e: &raw::Endpoint,
    id: &str,
) -> String {
    match &e.dns_suffix {
        Some(s)
            if s.len() == 8
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            s.clone()
        }
        Some(s) => {
            ctx.err(
                o.file,
                path,
                format!("dns_suffix `{s}` must be 8 characters of a-z and 0-9, e.g. `k3x9p2qz`"),
            );
            s.clone()
        }
        None => derived_suffix(id),
    }
}

/// `private_dns_only_for_inbound_resolver_endpoint`: S3 interface endpoints with private DNS only. When absent it
/// is provisionally on for S3; `cross_checks` turns it off where the VPC has no S3 gateway endpoint.
#[allow(clippy::too_many_arguments)]
fn inbound_only(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    e: &raw::Endpoint,
    service: &Service,
    kind: EndpointKind,
    private_dns: bool,
) -> bool {
    let p = path.key("private_dns_only_for_inbound_resolver_endpoint");
    match e.private_dns_only_for_inbound_resolver_endpoint {
        Some(true) if service.code != "s3" => {
            ctx.err(o.file, &p, "only S3 interface endpoints support private DNS only for inbound Resolver endpoints; remove it");
            false
        }
        Some(true) if !private_dns => {
            ctx.err(o.file, &p, "this needs `private_dns: true`");
            false
        }
        Some(v) => v,
        None => private_dns && service.code == "s3" && kind == EndpointKind::Interface,
    }
}

/// `ip_address_type` and `dns_record_ip_type` (AWS: ipv4 -> ipv4, ipv6 -> ipv6, dualstack -> any).
fn endpoint_ip_types(
    ctx: &mut Ctx<'_>,
    o: Origin<'_>,
    path: &YamlPath,
    e: &raw::Endpoint,
) -> (IpType, IpType) {
    let ip_address_type = match parse_ip_type(e.ip_address_type.as_deref(), false) {
        Ok(t) => t.unwrap_or(IpType::Ipv4),
        Err(msg) => {
            ctx.err(o.file, &path.key("ip_address_type"), msg);
            IpType::Ipv4
        }
    };
    let p = path.key("dns_record_ip_type");
    let dns_record_ip_type = match parse_ip_type(e.dns_record_ip_type.as_deref(), true) {
        Ok(Some(t)) => {
            let ok = match ip_address_type {
                IpType::Ipv4 => t == IpType::Ipv4,
                IpType::Ipv6 => t == IpType::Ipv6,
                _ => true,
            };
            if !ok {
                ctx.err(o.file, &p, format!("dns_record_ip_type {} is not allowed with ip_address_type {} (AWS: ipv4 -> ipv4, ipv6 -> ipv6, dualstack -> any)", ip_type_name(t), ip_type_name(ip_address_type)));
            }
            t
        }
        Ok(None) => ip_address_type,
        Err(msg) => {
            ctx.err(o.file, &p, msg);
            ip_address_type
        }
    };
    (ip_address_type, dns_record_ip_type)
}

pub(super) fn full_name_region(service: &str) -> Option<&str> {
    let parts: Vec<&str> = service.split('.').collect();
    if parts.len() >= 4 && (service.starts_with("com.amazonaws.") || service.starts_with("aws.")) {
        let r = parts[2];
        if r.contains('-') { Some(r) } else { None }
    } else {
        None
    }
}

/// `text` parsed as an address, if it is one (errors are reported where the address is checked).
fn parsed<T: FromStr>(text: &Option<String>) -> Option<T> {
    text.as_deref()?.parse().ok()
}
