"""vpc_resolver.Server against the installed binary: topologies in every form, queries, explain, reloads, errors."""

import os
import signal
import time

import dns.message
import dns.rcode
import pytest

from vpc_resolver import Server, ServerError

ONE_VPC = """
version: 1
region: us-east-1
vpcs:
  - id: vpc-0123456789abcdef0
    cidr: 10.0.0.0/16
    clients: [127.0.0.11/32]
    subnets:
      - { id: subnet-0123456789abcdef1, az: us-east-1a, cidr: 10.0.1.0/24 }
      - { id: subnet-0123456789abcdef2, az: us-east-1b, cidr: 10.0.2.0/24 }
endpoints:
  - service: ec2
    enis:
      - { subnet: subnet-0123456789abcdef1, ip: 10.0.1.10 }
      - { subnet: subnet-0123456789abcdef2, ip: 10.0.2.10 }
hosted_zones:
  - name: corp.internal
    records:
      - { name: db, type: A, value: %s }
"""


def topology(db="10.0.1.100"):
    return ONE_VPC % db


def test_embedded_default_answers_loopback_as_the_lab_vpc():
    with Server() as srv:
        assert srv.host == "127.0.0.1" and srv.port > 0
        ips = srv.addresses("ec2.us-east-1.amazonaws.com")
        assert ips and all(ip.startswith("10.0.") for ip in ips)
        assert ips == sorted(ips)


def test_yaml_text_query_returns_a_message_over_udp_and_tcp():
    with Server(topology=topology()) as srv:
        for tcp in (False, True):
            m = srv.query("db.corp.internal", source="127.0.0.11", tcp=tcp)
            assert isinstance(m, dns.message.Message)
            assert m.rcode() == dns.rcode.NOERROR
            assert [r.address for rr in m.answer for r in rr] == ["10.0.1.100"]


def test_source_picks_the_view():
    with Server(topology=topology()) as srv:
        assert srv.addresses("ec2.us-east-1.amazonaws.com", source="127.0.0.11") == ["10.0.1.10", "10.0.2.10"]
        # 127.0.0.12 matches no VPC: the public view has no private hosted zone.
        assert srv.addresses("db.corp.internal", source="127.0.0.12") == []


def test_dict_topology():
    topo = {
        "version": 1,
        "region": "us-east-1",
        "vpcs": [{"id": "vpc-0123456789abcdef0", "cidr": "10.9.0.0/16", "clients": ["127.0.0.0/8"], "azs": 2}],
        "hosted_zones": [{"name": "d.internal", "records": [{"name": "x", "type": "A", "value": "10.9.0.50"}]}],
    }
    with Server(topology=topo) as srv:
        assert srv.addresses("x.d.internal") == ["10.9.0.50"]


def test_path_topology_and_default_view(tmp_path):
    path = tmp_path / "topo.yaml"
    path.write_text(topology())
    for given in (path, str(path)):
        with Server(topology=given, default_view="vpc-0123456789abcdef0") as srv:
            assert srv.addresses("db.corp.internal", source="127.0.0.12") == ["10.0.1.100"]


def test_explain_is_the_json_trace():
    with Server(topology=topology()) as srv:
        trace = srv.explain("db.corp.internal", source="10.0.1.25")
        assert isinstance(trace, dict)
        assert "10.0.1.100" in str(trace["result"])
        resolver = srv.explain("db.corp.internal", "A", source="192.0.2.1", to="10.0.0.2")
        assert "10.0.1.100" in str(resolver["result"])
        outside = srv.explain("db.corp.internal", source="192.0.2.1")
        assert "10.0.1.100" not in str(outside["result"])


def test_bad_topology_raises_with_checks_output(tmp_path):
    bad = topology().replace("10.0.1.10 }", "10.7.1.10 }")
    with pytest.raises(ServerError) as err:
        Server(topology=bad)
    assert "10.7.1.10 is outside subnet" in str(err.value)
    path = tmp_path / "broken.yaml"
    path.write_text(bad)
    with pytest.raises(ServerError) as err:
        Server(topology=path)
    assert str(path) in str(err.value), "the message names the caller's file"


def test_missing_topology_file():
    with pytest.raises(FileNotFoundError):
        Server(topology="no/such/topology.yaml")


def test_set_topology_returns_once_the_new_one_answers():
    with Server(topology=topology("10.0.1.100")) as srv:
        port = srv.port
        for n in range(101, 106):
            srv.set_topology(topology(f"10.0.1.{n}"))
            assert srv.addresses("db.corp.internal", source="127.0.0.11") == [f"10.0.1.{n}"]
        assert srv.port == port


def test_set_topology_rejects_a_bad_one_and_keeps_serving():
    with Server(topology=topology()) as srv:
        with pytest.raises(ServerError) as err:
            srv.set_topology(topology("10.99.0.1").replace("cidr: 10.0.1.0/24", "cidr: 10.0.1.0/33"))
        assert "10.0.1.0/33" in str(err.value)
        assert srv.addresses("db.corp.internal", source="127.0.0.11") == ["10.0.1.100"]


def test_set_topology_on_the_embedded_default_keeps_the_port():
    with Server() as srv:
        port = srv.port
        srv.set_topology(topology("10.0.1.77"))
        assert srv.port == port
        assert srv.addresses("db.corp.internal", source="127.0.0.11") == ["10.0.1.77"]


def test_a_dead_server_makes_the_next_call_raise():
    srv = Server(topology=topology())
    try:
        os.kill(srv.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while srv.running and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ServerError, match="died"):
            srv.query("db.corp.internal")
        with pytest.raises(ServerError, match="died"):
            srv.addresses("db.corp.internal")
        with pytest.raises(ServerError, match="died"):
            srv.set_topology(topology())
    finally:
        srv.close()


def test_stop_ends_the_process_and_further_calls_raise():
    srv = Server(topology=topology())
    pid = srv.pid
    srv.close()
    assert not srv.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ServerError, match="stopped"):
        srv.query("db.corp.internal")


def test_extra_serve_arguments_are_passed_and_a_bad_one_reports_serves_error():
    with pytest.raises(ServerError) as err:
        Server(topology=topology(), args=["--no-such-flag"])
    assert "--no-such-flag" in str(err.value)


def test_fixture_stops_its_servers(vpc_resolver):
    a = vpc_resolver(topology=topology())
    b = vpc_resolver()
    assert a.port != b.port
    assert a.addresses("db.corp.internal", source="127.0.0.11") == ["10.0.1.100"]
