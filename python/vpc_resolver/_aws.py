"""`Server.from_aws`: read an account through boto3, write it as the AWS CLI would, `import aws` it, serve it.

The same code reads real AWS and moto's `mock_aws`. Each response is written as the CLI prints it (the boto3
response without ResponseMetadata, dates as strings), in the file layout `vpc-resolver import aws` documents: record
sets as `<zone id>.json` with a top-level HostedZoneId, per-VPC and per-endpoint listings with the id in the file
name. The import keeps what the account reports (`--keep-reported`): under moto, ENI addresses outside their subnet
and moto's DnsEntries names answer as moto reports them, each with a MotoDeviationWarning.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional


class AwsImportWarning(UserWarning):
    """Something of the account that `import aws` left out or changed (the importer's own warning text)."""


class MotoDeviationWarning(AwsImportWarning):
    """A value the account reports that AWS would not have produced (moto's); it is served as reported."""


def _dump(directory: Path, name: str, response: dict) -> None:
    response = dict(response)
    response.pop("ResponseMetadata", None)
    (directory / name).write_text(json.dumps(response, indent=2, default=str))


def _full(client: Any, operation: str, **params: Any) -> dict:
    """Every page of a listing merged into one response (boto3's paginators), or the one response."""
    if client.can_paginate(operation):
        result = client.get_paginator(operation).paginate(**params).build_full_result()
        result.pop("NextToken", None)
        return result
    return getattr(client, operation)(**params)


def _optional(directory: Path, name: str, call: Any) -> Optional[dict]:
    """APIs the importer may read that an account (or moto) may not offer: written when they answer."""
    try:
        response = call()
    except Exception:  # noqa: BLE001 - botocore raises many kinds for "not offered here"; none are fatal
        return None
    _dump(directory, name, response)
    return response


def collect(session: Any, directory: Path) -> list:
    """Writes the account's JSON into `directory`; returns the names of optional files written."""
    ec2 = session.client("ec2")
    r53 = session.client("route53")
    rr = session.client("route53resolver")
    region = session.region_name
    optional = []

    vpcs = _full(ec2, "describe_vpcs")
    _dump(directory, "describe-vpcs.json", vpcs)
    for vpc in vpcs.get("Vpcs", []):
        vid = vpc["VpcId"]
        for attr, key in [("enableDnsSupport", "support"), ("enableDnsHostnames", "hostnames")]:
            _dump(directory, f"describe-vpc-attribute-{key}-{vid}.json", ec2.describe_vpc_attribute(VpcId=vid, Attribute=attr))
        _dump(
            directory,
            f"list-hosted-zones-by-vpc-{vid}.json",
            _full(r53, "list_hosted_zones_by_vpc", VPCId=vid, VPCRegion=region),
        )
    _dump(directory, "describe-subnets.json", _full(ec2, "describe_subnets"))
    _dump(directory, "describe-vpc-endpoints.json", _full(ec2, "describe_vpc_endpoints"))
    _dump(directory, "describe-network-interfaces.json", _full(ec2, "describe_network_interfaces"))

    zones = _full(r53, "list_hosted_zones")
    _dump(directory, "list-hosted-zones.json", zones)
    for zone in zones.get("HostedZones", []):
        if not zone.get("Config", {}).get("PrivateZone"):
            continue
        zid = zone["Id"].split("/")[-1]
        _dump(directory, f"get-hosted-zone-{zid}.json", r53.get_hosted_zone(Id=zid))
        records = _full(r53, "list_resource_record_sets", HostedZoneId=zid)
        records["HostedZoneId"] = zid
        _dump(directory, f"{zid}.json", records)

    endpoints = _full(rr, "list_resolver_endpoints")
    _dump(directory, "list-resolver-endpoints.json", endpoints)
    for ep in endpoints.get("ResolverEndpoints", []):
        eid = ep["Id"]
        _dump(
            directory,
            f"list-resolver-endpoint-ip-addresses-{eid}.json",
            _full(rr, "list_resolver_endpoint_ip_addresses", ResolverEndpointId=eid),
        )
    _dump(directory, "list-resolver-rules.json", _full(rr, "list_resolver_rules"))
    _dump(directory, "list-resolver-rule-associations.json", _full(rr, "list_resolver_rule_associations"))

    # Instances, DNS Firewall and Route 53 Profiles: written where the account answers.
    extra = [
        ("describe-instances.json", lambda: _full(ec2, "describe_instances")),
        ("list-firewall-rule-groups.json", lambda: _full(rr, "list_firewall_rule_groups")),
        ("list-firewall-domain-lists.json", lambda: _full(rr, "list_firewall_domain_lists")),
        ("list-firewall-rule-group-associations.json", lambda: _full(rr, "list_firewall_rule_group_associations")),
    ]
    for name, call in extra:
        response = _optional(directory, name, call)
        if response is None:
            continue
        optional.append(name)
        for group in response.get("FirewallRuleGroups", []):
            gid = group["Id"]
            name = f"list-firewall-rules-{gid}.json"
            if _optional(directory, name, lambda: _full(rr, "list_firewall_rules", FirewallRuleGroupId=gid)):
                optional.append(name)
        for dlist in response.get("FirewallDomainLists", []):
            did = dlist["Id"]
            name = f"list-firewall-domains-{did}.json"
            if _optional(directory, name, lambda: _full(rr, "list_firewall_domains", FirewallDomainListId=did)):
                optional.append(name)
    try:
        profiles = session.client("route53profiles")
    except Exception:  # noqa: BLE001 - older botocore has no route53profiles
        profiles = None
    if profiles is not None:
        listing = _optional(directory, "list-profiles.json", lambda: _full(profiles, "list_profiles"))
        if listing is not None:
            optional.append("list-profiles.json")
            name = "list-profile-associations.json"
            if _optional(directory, name, lambda: _full(profiles, "list_profile_associations")):
                optional.append(name)
            for p in listing.get("ProfileSummaries", []):
                pid = p["Id"]
                name = f"list-profile-resource-associations-{pid}.json"
                if _optional(directory, name, lambda: _full(profiles, "list_profile_resource_associations", ProfileId=pid)):
                    optional.append(name)
    return optional


def pick_view(directory: Path) -> Optional[str]:
    """The view for clients on 127.0.0.1 when none is given: the only VPC that is not a default VPC (moto makes
    one per region), else the only VPC; None (public) when that is ambiguous."""
    vpcs = json.loads((directory / "describe-vpcs.json").read_text()).get("Vpcs", [])
    own = [v["VpcId"] for v in vpcs if not v.get("IsDefault")]
    if len(own) == 1:
        return own[0]
    if len(vpcs) == 1:
        return vpcs[0]["VpcId"]
    return None


def import_account(binary: str, directory: Path, region: str, optional: list) -> Path:
    """Runs `vpc-resolver import aws --keep-reported`; turns each of its warnings into a Python warning."""
    out = directory.parent / "topology.yaml"
    run = subprocess.run(
        [binary, "import", "aws", str(directory), "--keep-reported", "--region", region, "-o", str(out)],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        from ._server import ServerError

        raise ServerError(f"vpc-resolver import aws failed (exit {run.returncode}):\n{run.stderr}".rstrip())
    for line in run.stderr.splitlines():
        if not line.startswith("warning: "):
            continue
        text = line[len("warning: ") :]
        # Files for APIs this build of the importer does not read yet (instances, firewall, profiles).
        if "not an AWS CLI output this importer reads" in text and any(text.startswith(str(directory / n)) for n in optional):
            continue
        category = MotoDeviationWarning if "kept as reported" in text else AwsImportWarning
        warnings.warn(text, category, stacklevel=3)
    return out


def from_aws(cls: Any, session: Any = None, default_view: Optional[str] = None, **kwargs: Any) -> Any:
    """Server.from_aws(session=None, default_view=None, **kwargs) -> Server

    Reads the account through `session` (a boto3 Session; None: boto3's default), imports it with
    `vpc-resolver import aws --keep-reported` and serves it. default_view None: the account's only non-default VPC.
    kwargs go to Server (upstream, args). Each importer warning becomes an AwsImportWarning; values moto reports
    that AWS would not (ENI addresses outside their subnet, DnsEntries names) a MotoDeviationWarning."""
    import boto3

    if session is None:
        session = boto3.Session()
    if session.region_name is None:
        # moto's default region; real accounts set one in their profile or AWS_DEFAULT_REGION.
        session = boto3.Session(
            region_name="us-east-1",
            botocore_session=getattr(session, "_session", None),
        )
        warnings.warn("the boto3 session has no region; reading us-east-1", AwsImportWarning, stacklevel=2)
    from ._server import binary

    work = Path(tempfile.mkdtemp(prefix="vpc-resolver-aws-"))
    try:
        account = work / "account"
        account.mkdir()
        optional = collect(session, account)
        topology = import_account(binary(), account, session.region_name, optional)
        if default_view is None:
            default_view = pick_view(account)
        return cls(topology=topology, default_view=default_view, **kwargs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
