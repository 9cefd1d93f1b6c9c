"""Test helper run inside a network namespace (dnspython).

  dnsprobe.py ask TUPLES.json RESULTS.json   send each {src, dst, port, name, type} from src to dst; record the reply
  dnsprobe.py catch LOG ADDR:PORT...         answer every query NXDOMAIN and log {to, src, name, type} per line
"""

import json
import socket
import sys
import threading

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype


def ask(tuples_path, results_path):
    tuples = json.load(open(tuples_path))
    out = []
    for t in tuples:
        q = dns.message.make_query(t["name"], t["type"], use_edns=0, payload=4096)
        fam = socket.AF_INET6 if ":" in t["src"] else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind((t["src"], 0))
        s.settimeout(4)
        s.sendto(q.to_wire(), (t["dst"], t["port"]))
        try:
            wire, _ = s.recvfrom(65535)
            r = dns.message.from_wire(wire)
            def rows(section):
                return [[str(rrset.name).lower(), rrset.ttl, dns.rdatatype.to_text(rrset.rdtype), rd.to_text().lower()]
                        for rrset in section for rd in rrset]
            ede = [o.code for o in r.options if isinstance(o, dns.edns.EDEOption)]
            out.append({"rcode": dns.rcode.to_text(r.rcode()), "answers": rows(r.answer),
                        "authority": rows(r.authority), "ede": ede, "aa": bool(r.flags & dns.flags.AA)})
        except socket.timeout:
            out.append({"rcode": "TIMEOUT", "answers": [], "authority": [], "ede": [], "aa": False})
        finally:
            s.close()
    json.dump(out, open(results_path, "w"))


def catch(log_path, addrs):
    lock = threading.Lock()
    log = open(log_path, "a", buffering=1)
    socks = []
    for a in addrs:
        host, port = a.rsplit(":", 1)
        host = host.strip("[]")
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, int(port)))
        socks.append((a, s))

    def serve(a, s):
        while True:
            wire, peer = s.recvfrom(65535)
            try:
                q = dns.message.from_wire(wire)
            except Exception:
                continue
            r = dns.message.make_response(q)
            r.set_rcode(dns.rcode.NXDOMAIN)
            qq = q.question[0]
            with lock:
                log.write(json.dumps({"to": a, "src": peer[0], "name": str(qq.name).lower(),
                                      "type": dns.rdatatype.to_text(qq.rdtype)}) + "\n")
            s.sendto(r.to_wire(), peer)

    for a, s in socks:
        threading.Thread(target=serve, args=(a, s), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    if sys.argv[1] == "ask":
        ask(sys.argv[2], sys.argv[3])
    else:
        catch(sys.argv[2], sys.argv[3:])
