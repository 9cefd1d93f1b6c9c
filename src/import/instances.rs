//! EC2 instances from `ec2 describe-instances`: addresses and `PrivateDnsNameOptions`.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(super) struct Reservation {
    instances: Vec<AwsInstance>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct AwsInstance {
    instance_id: String,
    subnet_id: Option<String>,
    private_ip_address: Option<String>,
    public_ip_address: Option<String>,
    state: Option<InstanceState>,
    network_interfaces: Vec<InstanceEni>,
    private_dns_name_options: Option<PrivateDnsNameOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct InstanceState {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct InstanceEni {
    ipv6_addresses: Vec<Ipv6Entry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PrivateDnsNameOptions {
    hostname_type: Option<String>,
    enable_resource_name_dns_a_record: Option<bool>,
    #[serde(rename = "EnableResourceNameDnsAAAARecord")]
    enable_resource_name_dns_aaaa_record: Option<bool>,
}

impl Importer<'_> {
    pub(super) fn instances(&mut self) -> Vec<raw::Instance> {
        let all: Vec<&AwsInstance> = self
            .parsed
            .iter()
            .flat_map(|p| p.response.reservations.iter().flatten())
            .flat_map(|r| r.instances.iter())
            .collect();
        let mut out: Vec<raw::Instance> = Vec::new();
        for i in all {
            if out.iter().any(|x| x.id.as_deref() == Some(&i.instance_id)) {
                continue;
            }
            if let Some(instance) = self.instance(i) {
                out.push(instance);
            }
        }
        out
    }

    fn instance(&mut self, i: &AwsInstance) -> Option<raw::Instance> {
        let id = &i.instance_id;
        let state = i.state.as_ref().map_or("", |s| s.name.as_str());
        if matches!(state, "terminated" | "shutting-down") {
            self.warn(format!("{id}: skipped: state {state}"));
            return None;
        }
        let (Some(subnet), Some(ip)) = (&i.subnet_id, &i.private_ip_address) else {
            self.warn(format!("{id}: skipped: no subnet or private IPv4 address (IPv6-only instances are not modelled)"));
            return None;
        };
        let Some((_, cidr, cidr6)) = self.subnets.get(subnet).cloned() else {
            self.warn(format!(
                "{id}: skipped: its subnet {subnet} is not in the input (describe-subnets)"
            ));
            return None;
        };
        let inside = ip
            .parse::<Ipv4Addr>()
            .is_ok_and(|a| cidr.is_some_and(|c| c.contains(&a)));
        let ipv6 = i
            .network_interfaces
            .iter()
            .flat_map(|e| e.ipv6_addresses.iter())
            .find_map(|a| {
                let v6: Ipv6Addr = a.ipv6_address.parse().ok()?;
                cidr6
                    .is_some_and(|c| c.contains(&v6))
                    .then(|| v6.to_string())
            });
        let options = i.private_dns_name_options.as_ref();
        Some(raw::Instance {
            id: Some(id.clone()),
            subnet: subnet.clone(),
            // moto's addresses may lie outside the subnet: then the topology assigns one inside it.
            ip: inside.then(|| ip.clone()),
            ipv6,
            public_ip: i.public_ip_address.clone(),
            hostname_type: options.and_then(|o| o.hostname_type.clone()),
            resource_name_a: options.and_then(|o| o.enable_resource_name_dns_a_record),
            resource_name_aaaa: options.and_then(|o| o.enable_resource_name_dns_aaaa_record),
        })
    }
}
