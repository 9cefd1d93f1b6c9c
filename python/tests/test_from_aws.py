"""Server.from_aws on moto's mock_aws: every name the account reports answers with the addresses it reports."""

import warnings

import boto3
import pytest
from moto import mock_aws

from vpc_resolver import AwsImportWarning, MotoDeviationWarning, Server

REGION = "us-east-1"


@pytest.fixture
def session(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def build(session):
    ec2 = session.client("ec2")
    r53 = session.client("route53")
    rr = session.client("route53resolver")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
        for cidr, az in [("10.20.1.0/24", "us-east-1a"), ("10.20.2.0/24", "us-east-1b")]
    ]
    endpoints = {
        svc: ec2.create_vpc_endpoint(
            VpcId=vpc,
            ServiceName=f"com.amazonaws.{REGION}.{svc}",
            VpcEndpointType="Interface",
            SubnetIds=subnets,
            PrivateDnsEnabled=True,
        )["VpcEndpoint"]
        for svc in ["ec2", "sts", "ecr.dkr"]
    }
    zone = r53.create_hosted_zone(
        Name="corp.internal",
        CallerReference="t",
        HostedZoneConfig={"PrivateZone": True},
        VPC={"VPCRegion": REGION, "VPCId": vpc},
    )["HostedZone"]["Id"]
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "db.corp.internal.",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "10.20.1.100"}],
                    },
                }
            ]
        },
    )
    rr.create_resolver_endpoint(
        CreatorRequestId="in",
        SecurityGroupIds=[],
        Direction="INBOUND",
        IpAddresses=[{"SubnetId": subnets[0], "Ip": "10.20.1.53"}, {"SubnetId": subnets[1], "Ip": "10.20.2.53"}],
    )
    return ec2, vpc, endpoints


def reported(ec2, endpoint):
    enis = ec2.describe_network_interfaces(NetworkInterfaceIds=endpoint["NetworkInterfaceIds"])["NetworkInterfaces"]
    return sorted(e["PrivateIpAddress"] for e in enis)


def test_every_reported_name_answers_with_the_reported_enis(session):
    ec2, vpc, endpoints = build(session)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        srv = Server.from_aws(session)
    try:
        deviations = [str(w.message) for w in caught if issubclass(w.category, MotoDeviationWarning)]
        for svc, ep in endpoints.items():
            ips = reported(ec2, ep)
            assert len(ips) == 2
            private = {"ec2": "ec2.us-east-1.amazonaws.com", "sts": "sts.us-east-1.amazonaws.com",
                       "ecr.dkr": "123456789012.dkr.ecr.us-east-1.amazonaws.com"}[svc]
            assert srv.addresses(private) == ips, svc
            for entry in ep["DnsEntries"]:
                assert srv.addresses(entry["DnsName"]) == ips, entry["DnsName"]
                assert any(entry["DnsName"] in d for d in deviations), "a warning names moto's DnsEntries name"
            for ip in ips:
                assert any(ip in d and "outside subnet" in d for d in deviations), f"a warning names {ip}"
        assert srv.addresses("db.corp.internal") == ["10.20.1.100"]
        # The inbound endpoint's addresses are the VPC's view.
        assert srv.addresses("db.corp.internal", source="127.0.0.1") == ["10.20.1.100"]
        trace = srv.explain("db.corp.internal", source="10.20.1.25")
        assert "10.20.1.100" in str(trace["result"])
    finally:
        srv.close()


def test_default_view_can_be_public(session):
    build(session)
    with pytest.warns(AwsImportWarning):
        srv = Server.from_aws(session, default_view="public")
    with srv:
        assert srv.addresses("db.corp.internal") == []


def test_fixture_from_aws(session, vpc_resolver):
    ec2, vpc, endpoints = build(session)
    with pytest.warns(MotoDeviationWarning):
        srv = vpc_resolver.from_aws(session, default_view=vpc)
    assert srv.addresses("sts.us-east-1.amazonaws.com") == reported(ec2, endpoints["sts"])
