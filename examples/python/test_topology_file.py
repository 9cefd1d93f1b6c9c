"""A topology file served on a free port; the fixture stops it when the test ends."""

from pathlib import Path

import dns.rcode

TOPOLOGY = Path(__file__).with_name("topology.yaml")


def test_endpoint_dns(vpc_resolver):
    srv = vpc_resolver(topology=str(TOPOLOGY))
    # Inside the VPC (127.0.0.11 is one of its clients): private DNS answers with the endpoint's ENIs.
    assert srv.addresses("ec2.us-east-1.amazonaws.com", source="127.0.0.11") == ["10.0.1.10", "10.0.2.10"]
    assert srv.addresses("www.app.internal", source="127.0.0.11") == ["10.0.1.100"]
    # Outside it, the private hosted zone does not exist.
    m = srv.query("www.app.internal", source="127.0.0.12")
    assert m.rcode() != dns.rcode.NOERROR or not m.answer


def test_explain_names_the_winner(vpc_resolver):
    srv = vpc_resolver(topology=TOPOLOGY)
    trace = srv.explain("db.app.internal", source="10.0.1.25")
    assert trace["view"]
    assert "10.0.1.100" in str(trace["result"])
