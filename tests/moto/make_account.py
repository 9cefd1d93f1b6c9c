#!/usr/bin/env python3
"""Builds a small AWS account in moto (in process, no network) and writes what the AWS CLI would print for it.

Usage: make_account.py OUT_DIR

The account: two VPCs (the first with a secondary CIDR), subnets in two AZs, interface endpoints for ec2, sts and
ecr.dkr with private DNS, an S3 gateway endpoint, a private hosted zone with records, Resolver inbound and outbound
endpoints, and a forward rule associated with the first VPC. Each describe/list response is written as the CLI
prints it: the boto3 response without ResponseMetadata, as JSON (dates as strings). File names follow the layout
`vpc-resolver import aws` documents: record sets as `<zone id>.json`, per-VPC and per-endpoint listings with the
VPC or endpoint id in the name. On stdout: one JSON line with the ids the caller may want to check.
"""

import json
import os
import sys

import boto3
from moto import mock_aws

REGION = "us-east-1"


def dump(out_dir, name, response):
    response = dict(response)
    response.pop("ResponseMetadata", None)
    with open(os.path.join(out_dir, name), "w") as f:
        json.dump(response, f, indent=2, default=str)


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    # moto needs credentials to exist, never uses them.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        r53 = boto3.client("route53", region_name=REGION)
        rr = boto3.client("route53resolver", region_name=REGION)

        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": "app"}])
        ec2.associate_vpc_cidr_block(VpcId=vpc, CidrBlock="10.21.0.0/16")
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsSupport={"Value": True})
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        other = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]

        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
            for cidr, az in [
                ("10.20.1.0/24", "us-east-1a"),
                ("10.20.2.0/24", "us-east-1b"),
                ("10.21.1.0/24", "us-east-1a"),
            ]
        ]
        other_subnet = ec2.create_subnet(VpcId=other, CidrBlock="10.30.1.0/24", AvailabilityZone="us-east-1a")[
            "Subnet"
        ]["SubnetId"]
        rtb = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]

        endpoints = {}
        for svc in ["ec2", "sts", "ecr.dkr"]:
            endpoints[svc] = ec2.create_vpc_endpoint(
                VpcId=vpc,
                ServiceName=f"com.amazonaws.{REGION}.{svc}",
                VpcEndpointType="Interface",
                SubnetIds=subnets[:2],
                PrivateDnsEnabled=True,
            )["VpcEndpoint"]["VpcEndpointId"]
        endpoints["s3-gateway"] = ec2.create_vpc_endpoint(
            VpcId=vpc,
            ServiceName=f"com.amazonaws.{REGION}.s3",
            VpcEndpointType="Gateway",
            RouteTableIds=[rtb],
        )["VpcEndpoint"]["VpcEndpointId"]

        ec2_entry = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoints["ec2"]])["VpcEndpoints"][0]["DnsEntries"][0]
        zone = r53.create_hosted_zone(
            Name="corp.internal",
            CallerReference="vpc-resolver-import-test",
            HostedZoneConfig={"Comment": "imported by the test", "PrivateZone": True},
            VPC={"VPCRegion": REGION, "VPCId": vpc},
        )["HostedZone"]["Id"].split("/")[-1]
        changes = [
            ("db.corp.internal.", "A", ["10.20.1.100"]),
            ("v6.corp.internal.", "AAAA", ["2600:1f18::100"]),
            ("www.corp.internal.", "CNAME", ["db.corp.internal."]),
            ("corp.internal.", "TXT", ['"hello from moto"']),
            ("corp.internal.", "MX", ["10 mail.corp.internal."]),
            ("_sip._udp.corp.internal.", "SRV", ["10 5 5060 sip.corp.internal."]),
        ]
        r53.change_resource_record_sets(
            HostedZoneId=zone,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": rtype,
                            "TTL": 300,
                            "ResourceRecords": [{"Value": v} for v in values],
                        },
                    }
                    for name, rtype, values in changes
                ]
                + [
                    {
                        # An alias to the ec2 endpoint's name, as the console writes one.
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": "ec2-alias.corp.internal.",
                            "Type": "A",
                            "AliasTarget": {
                                "HostedZoneId": ec2_entry["HostedZoneId"],
                                "DNSName": ec2_entry["DnsName"],
                                "EvaluateTargetHealth": False,
                            },
                        },
                    },
                    {
                        # An alias to a load balancer: not modelled, the importer must say so.
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": "app.corp.internal.",
                            "Type": "A",
                            "AliasTarget": {
                                "HostedZoneId": "Z35SXDOTRQ7X7K",
                                "DNSName": "internal-app-123456789.us-east-1.elb.amazonaws.com.",
                                "EvaluateTargetHealth": False,
                            },
                        },
                    },
                ]
            },
        )

        inbound = rr.create_resolver_endpoint(
            CreatorRequestId="in",
            Name="inbound",
            SecurityGroupIds=[],
            Direction="INBOUND",
            IpAddresses=[{"SubnetId": subnets[0], "Ip": "10.20.1.53"}, {"SubnetId": subnets[1], "Ip": "10.20.2.53"}],
        )["ResolverEndpoint"]["Id"]
        outbound = rr.create_resolver_endpoint(
            CreatorRequestId="out",
            Name="outbound",
            SecurityGroupIds=[],
            Direction="OUTBOUND",
            IpAddresses=[{"SubnetId": subnets[0], "Ip": "10.20.1.54"}, {"SubnetId": subnets[1], "Ip": "10.20.2.54"}],
        )["ResolverEndpoint"]["Id"]
        rule = rr.create_resolver_rule(
            CreatorRequestId="fwd",
            Name="corp",
            RuleType="FORWARD",
            DomainName="corp.example.com",
            TargetIps=[{"Ip": "127.0.0.1", "Port": 5301}],
            ResolverEndpointId=outbound,
        )["ResolverRule"]["Id"]
        rr.associate_resolver_rule(ResolverRuleId=rule, VPCId=vpc, Name="corp-app")
        system_rule = rr.create_resolver_rule(
            CreatorRequestId="sys", Name="public-corp", RuleType="SYSTEM", DomainName="public.corp.example.com"
        )["ResolverRule"]["Id"]
        rr.associate_resolver_rule(ResolverRuleId=system_rule, VPCId=vpc, Name="public-corp-app")

        dump(out_dir, "describe-vpcs.json", ec2.describe_vpcs())
        # The second VPC's attributes are left out on purpose: the importer assumes true and warns.
        for attr, key in [("enableDnsSupport", "support"), ("enableDnsHostnames", "hostnames")]:
            for v in [vpc]:
                dump(out_dir, f"describe-vpc-attribute-{key}-{v}.json", ec2.describe_vpc_attribute(VpcId=v, Attribute=attr))
        dump(out_dir, "describe-subnets.json", ec2.describe_subnets())
        dump(out_dir, "describe-vpc-endpoints.json", ec2.describe_vpc_endpoints())
        dump(out_dir, "describe-network-interfaces.json", ec2.describe_network_interfaces())
        dump(out_dir, f"list-hosted-zones-by-vpc-{vpc}.json", r53.list_hosted_zones_by_vpc(VPCId=vpc, VPCRegion=REGION))
        dump(out_dir, "list-hosted-zones.json", r53.list_hosted_zones())
        dump(out_dir, f"get-hosted-zone-{zone}.json", r53.get_hosted_zone(Id=zone))
        dump(out_dir, f"{zone}.json", r53.list_resource_record_sets(HostedZoneId=zone))
        dump(out_dir, "list-resolver-endpoints.json", rr.list_resolver_endpoints())
        for ep in [inbound, outbound]:
            dump(out_dir, f"list-resolver-endpoint-ip-addresses-{ep}.json", rr.list_resolver_endpoint_ip_addresses(ResolverEndpointId=ep))
        dump(out_dir, "list-resolver-rules.json", rr.list_resolver_rules())
        dump(out_dir, "list-resolver-rule-associations.json", rr.list_resolver_rule_associations())

        print(
            json.dumps(
                {
                    "vpc": vpc,
                    "other_vpc": other,
                    "other_subnet": other_subnet,
                    "subnets": subnets,
                    "endpoints": endpoints,
                    "zone": zone,
                    "inbound": inbound,
                    "outbound": outbound,
                    "rule": rule,
                    "system_rule": system_rule,
                }
            )
        )


if __name__ == "__main__":
    main()
