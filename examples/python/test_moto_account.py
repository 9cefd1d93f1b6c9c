"""A moto account served as DNS: what the account reports is what DNS answers."""

import boto3
import pytest
from moto import mock_aws

from vpc_resolver import MotoDeviationWarning


@pytest.fixture
def aws(monkeypatch):
    # moto needs credentials to exist, never uses them.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def test_interface_endpoint_answers_with_its_enis(aws, vpc_resolver):
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"us-east-1{az}")["Subnet"]["SubnetId"]
        for i, az in [(1, "a"), (2, "b")]
    ]
    ep = ec2.create_vpc_endpoint(
        VpcId=vpc,
        ServiceName="com.amazonaws.us-east-1.sts",
        VpcEndpointType="Interface",
        SubnetIds=subnets,
        PrivateDnsEnabled=True,
    )["VpcEndpoint"]

    with pytest.warns(MotoDeviationWarning):
        srv = vpc_resolver.from_aws(aws)

    enis = ec2.describe_network_interfaces(NetworkInterfaceIds=ep["NetworkInterfaceIds"])["NetworkInterfaces"]
    reported = sorted(e["PrivateIpAddress"] for e in enis)
    assert srv.addresses("sts.us-east-1.amazonaws.com") == reported
    for entry in ep["DnsEntries"]:
        assert srv.addresses(entry["DnsName"]) == reported
