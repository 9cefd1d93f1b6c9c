#!/usr/bin/env bash
# The two-site hybrid DNS demo with Linux network namespaces (needs root, iproute2, unbound, dnsmasq, dig, openssl).
#
#   demo.sh up     build the two sites and start the servers
#   demo.sh test   ask every question from both sides with dig and getent; exit 1 on any wrong answer
#   demo.sh down   remove everything `up` made (idempotent)
#
# Sites (addresses exist only inside the namespaces):
#   PREFIX-vpc             vpc-resolver on 10.0.0.2 (VPC resolver) and 10.0.1.53, 10.0.2.53 (inbound endpoint,
#                          Do53 and DoH on port 443 with a certificate made by `up`),
#                          sending forward-rule queries from 10.0.1.54 (outbound endpoint)
#   PREFIX-vpc-client      an instance, 10.0.1.25, resolv.conf -> 10.0.0.2
#   PREFIX-onprem          unbound 192.168.10.10 (corporate DNS: corp.example.com; amazonaws.com and
#                          internal.example.com -> the inbound endpoint) and dnsmasq 192.168.10.99 (the "internet")
#   PREFIX-onprem-client   a workstation, 192.168.10.20, resolv.conf -> 192.168.10.10
# The servers' configuration files beside this script are shared with compose.yaml.
#
# Environment: VPC_RESOLVER_BIN (else `cargo build` here), DEMO_PREFIX (default vpcr-demo), DEMO_STATE (default
# ${TMPDIR:-/tmp}/$DEMO_PREFIX: configs, logs, pid files).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PREFIX=${DEMO_PREFIX:-vpcr-demo}
STATE=${DEMO_STATE:-${TMPDIR:-/tmp}/$PREFIX}
NS_VPC=$PREFIX-vpc
NS_VPC_CLIENT=$PREFIX-vpc-client
NS_ONPREM=$PREFIX-onprem
NS_ONPREM_CLIENT=$PREFIX-onprem-client
ALL_NS=("$NS_VPC_CLIENT" "$NS_ONPREM_CLIENT" "$NS_VPC" "$NS_ONPREM")
PATH=$PATH:/usr/sbin:/sbin

log() { printf '%s\n' "$*" >&2; }
die() { log "demo.sh: $*"; exit 1; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

binary() {
    if [[ -n ${VPC_RESOLVER_BIN:-} ]]; then
        [[ -x $VPC_RESOLVER_BIN ]] || die "VPC_RESOLVER_BIN=$VPC_RESOLVER_BIN is not an executable"
        printf '%s\n' "$VPC_RESOLVER_BIN"
        return
    fi
    (cd "$REPO" && cargo build --quiet --bin vpc-resolver) >&2
    printf '%s\n' "${CARGO_TARGET_DIR:-$REPO/target}/debug/vpc-resolver"
}

# Starts "$@" in namespace $1 in the background, output to $STATE/$2.log, pid to $STATE/$2.pid.
start() {
    local ns=$1 name=$2
    shift 2
    setsid ip netns exec "$ns" "$@" </dev/null >"$STATE/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

# Waits (at most 10 s) until `dig [OPTION] @server name` in namespace ns gives an answer.
wait_dns() {
    local ns=$1 server=$2 name=$3 what=$4 opt=${5:-+notcp}
    for _ in $(seq 100); do
        if [[ -n $(in_ns "$ns" dig "$opt" +short +time=1 +tries=1 "@$server" "$name" A 2>/dev/null) ]]; then
            return 0
        fi
        sleep 0.1
    done
    log "--- $what log:"
    cat "$STATE/$what.log" >&2 || true
    die "$what did not answer $name on $server"
}

up() {
    [[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
    for tool in ip unbound dnsmasq dig getent setsid openssl; do
        command -v "$tool" >/dev/null || die "missing $tool (Debian: iproute2 unbound dnsmasq-base bind9-dnsutils openssl)"
    done
    local bin
    bin=$(binary)
    down
    mkdir -p "$STATE"
    for ns in "${ALL_NS[@]}"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done

    # Links. veth ends are created inside the namespaces, so no name is ever taken in the host's namespace.
    ip -n "$NS_VPC" link add to-client type veth peer name eth0 netns "$NS_VPC_CLIENT"
    ip -n "$NS_VPC" link add to-onprem type veth peer name to-vpc netns "$NS_ONPREM"
    ip -n "$NS_ONPREM" link add to-client type veth peer name eth0 netns "$NS_ONPREM_CLIENT"

    # The VPC side: the resolver address, the inbound and outbound endpoint addresses; on premises via the link.
    ip -n "$NS_VPC" addr add 10.0.0.2/16 dev to-client
    for ip in 10.0.1.53 10.0.2.53 10.0.1.54 10.0.2.54; do
        ip -n "$NS_VPC" addr add "$ip/32" dev to-client
    done
    ip -n "$NS_VPC" link set to-client up
    ip -n "$NS_VPC" link set to-onprem up
    ip -n "$NS_VPC" route add 192.168.10.0/24 dev to-onprem src 10.0.1.54
    ip -n "$NS_VPC_CLIENT" addr add 10.0.1.25/16 dev eth0
    ip -n "$NS_VPC_CLIENT" link set eth0 up

    # The on-premises side: the DNS servers on lo, the workstation on its own link, the VPC via the other.
    ip -n "$NS_ONPREM" addr add 192.168.10.10/32 dev lo
    ip -n "$NS_ONPREM" addr add 192.168.10.99/32 dev lo
    ip -n "$NS_ONPREM" link set to-vpc up
    ip -n "$NS_ONPREM" link set to-client up
    ip -n "$NS_ONPREM" route add 10.0.0.0/16 dev to-vpc src 192.168.10.10
    ip -n "$NS_ONPREM" route add 192.168.10.20/32 dev to-client src 192.168.10.10
    ip -n "$NS_ONPREM_CLIENT" addr add 192.168.10.20/24 dev eth0
    ip -n "$NS_ONPREM_CLIENT" link set eth0 up

    # The clients' resolv.conf: `ip netns exec` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf.
    mkdir -p "/etc/netns/$NS_VPC_CLIENT" "/etc/netns/$NS_ONPREM_CLIENT"
    cp "$HERE/resolv-vpc.conf" "/etc/netns/$NS_VPC_CLIENT/resolv.conf"
    cp "$HERE/resolv-onprem.conf" "/etc/netns/$NS_ONPREM_CLIENT/resolv.conf"

    # The "internet": a stub with the public S3 answer (the same configuration as in compose.yaml).
    start "$NS_ONPREM" internet dnsmasq --keep-in-foreground --pid-file --conf-file="$HERE/internet.conf"

    # The corporate DNS server (the same configuration as in compose.yaml).
    unbound-checkconf "$HERE/unbound.conf" >/dev/null
    start "$NS_ONPREM" unbound unbound -d -c "$HERE/unbound.conf"

    # The inbound endpoint's certificate for DoH (self-signed; clients here do not verify it).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=inbound.demo \
        -addext subjectAltName=IP:10.0.1.53,IP:10.0.2.53 -keyout "$STATE/key.pem" -out "$STATE/cert.pem" 2>/dev/null

    # vpc-resolver on every topology address present in its namespace, port 53; DoH on 443 of the inbound endpoint.
    start "$NS_VPC" vpc-resolver "$bin" serve "$HERE/topology.yaml" --listen-topology=53 \
        --upstream 192.168.10.99 --query-log --tls-cert "$STATE/cert.pem" --tls-key "$STATE/key.pem"

    wait_dns "$NS_ONPREM" 192.168.10.99 s3.us-east-1.amazonaws.com internet
    wait_dns "$NS_VPC" 10.0.1.53 ec2.us-east-1.amazonaws.com vpc-resolver
    wait_dns "$NS_ONPREM" 10.0.1.53 ec2.us-east-1.amazonaws.com vpc-resolver +https
    wait_dns "$NS_ONPREM" 192.168.10.10 host.corp.example.com unbound
    log "up: namespaces ${ALL_NS[*]}; state in $STATE"
    log "try: ip netns exec $NS_VPC_CLIENT dig ec2.us-east-1.amazonaws.com"
}

FAILED=0
# check WHAT EXPECTED COMMAND...: the sorted, unique addresses COMMAND prints must equal EXPECTED (space-separated),
# or its dig status must equal EXPECTED when EXPECTED is NXDOMAIN.
check() {
    local what=$1 want=$2
    shift 2
    local out got
    out=$("$@" 2>&1) || true
    if [[ $want == NXDOMAIN ]]; then
        got=$(grep -o 'status: [A-Z]*' <<<"$out" | head -1 | cut -d' ' -f2) || true
    else
        got=$(grep -oE '^[0-9]+(\.[0-9]+){3}' <<<"$out" | sort -uV | paste -sd' ') || true # no address at all is a FAIL below, not an exit
    fi
    if [[ $got == "$want" ]]; then
        printf 'ok    %-62s %s\n' "$what" "$got"
    else
        printf 'FAIL  %-62s got [%s], want [%s]\n' "$what" "$got" "$want"
        printf '%s\n' "$out" | sed 's/^/      | /'
        FAILED=1
    fi
}

run_tests() {
    ip netns list | grep -q "^$NS_VPC_CLIENT\b" || die "not up; run: $0 up"
    local vc=(ip netns exec "$NS_VPC_CLIENT") oc=(ip netns exec "$NS_ONPREM_CLIENT")
    local dig=(dig +short +time=2 +tries=1) s3vpce=bucket.vpce-0e0e00000000000e3-demos3in.s3.us-east-1.vpce.amazonaws.com
    echo "from the VPC client (10.0.1.25, resolv.conf -> 10.0.0.2):"
    check "dig ec2.us-east-1.amazonaws.com" "10.0.1.10 10.0.2.10" "${vc[@]}" "${dig[@]}" ec2.us-east-1.amazonaws.com
    check "getent ahosts ec2.us-east-1.amazonaws.com" "10.0.1.10 10.0.2.10" "${vc[@]}" getent ahosts ec2.us-east-1.amazonaws.com
    check "dig sts.us-east-1.amazonaws.com" "10.0.1.11 10.0.2.11" "${vc[@]}" "${dig[@]}" sts.us-east-1.amazonaws.com
    check "dig host.corp.example.com (forward rule, outbound endpoint)" "192.168.10.50" "${vc[@]}" "${dig[@]}" host.corp.example.com
    check "getent ahosts host.corp.example.com" "192.168.10.50" "${vc[@]}" getent ahosts host.corp.example.com
    check "dig s3.us-east-1.amazonaws.com (public: gateway endpoint)" "198.51.100.10" "${vc[@]}" "${dig[@]}" s3.us-east-1.amazonaws.com
    check "getent ahosts s3.us-east-1.amazonaws.com" "198.51.100.10" "${vc[@]}" getent ahosts s3.us-east-1.amazonaws.com
    check "dig db.internal.example.com (private hosted zone)" "10.0.1.100" "${vc[@]}" "${dig[@]}" db.internal.example.com
    check "dig foo.ec2.us-east-1.amazonaws.com" NXDOMAIN "${vc[@]}" dig +time=2 +tries=1 foo.ec2.us-east-1.amazonaws.com
    echo "from the on-premises workstation (192.168.10.20, resolv.conf -> unbound 192.168.10.10):"
    check "dig ec2.us-east-1.amazonaws.com (via the inbound endpoint)" "10.0.1.10 10.0.2.10" "${oc[@]}" "${dig[@]}" ec2.us-east-1.amazonaws.com
    check "getent ahosts ec2.us-east-1.amazonaws.com" "10.0.1.10 10.0.2.10" "${oc[@]}" getent ahosts ec2.us-east-1.amazonaws.com
    check "dig s3.us-east-1.amazonaws.com (S3 interface endpoint)" "10.0.1.12 10.0.2.12" "${oc[@]}" "${dig[@]}" s3.us-east-1.amazonaws.com
    check "getent ahosts s3.us-east-1.amazonaws.com" "10.0.1.12 10.0.2.12" "${oc[@]}" getent ahosts s3.us-east-1.amazonaws.com
    check "dig my-bucket.s3.us-east-1.amazonaws.com" "10.0.1.12 10.0.2.12" "${oc[@]}" "${dig[@]}" my-bucket.s3.us-east-1.amazonaws.com
    check "dig bucket.vpce-…-demos3in.s3.us-east-1.vpce.amazonaws.com" "10.0.1.12 10.0.2.12" "${oc[@]}" "${dig[@]}" "$s3vpce"
    check "dig host.corp.example.com" "192.168.10.50" "${oc[@]}" "${dig[@]}" host.corp.example.com
    check "getent ahosts host.corp.example.com" "192.168.10.50" "${oc[@]}" getent ahosts host.corp.example.com
    check "dig db.internal.example.com (private zone via inbound)" "10.0.1.100" "${oc[@]}" "${dig[@]}" db.internal.example.com
    echo "DNS over HTTPS from the on-premises DNS server (192.168.10.10) to the inbound endpoint (10.0.1.53:443):"
    local on=(ip netns exec "$NS_ONPREM") doh=(dig +https +short +time=2 +tries=1 @10.0.1.53)
    check "dig +https ec2.us-east-1.amazonaws.com" "10.0.1.10 10.0.2.10" "${on[@]}" "${doh[@]}" ec2.us-east-1.amazonaws.com
    check "dig +https s3.us-east-1.amazonaws.com (inbound only)" "10.0.1.12 10.0.2.12" "${on[@]}" "${doh[@]}" s3.us-east-1.amazonaws.com
    check "dig +https db.internal.example.com" "10.0.1.100" "${on[@]}" "${doh[@]}" db.internal.example.com
    if grep -q 'transport.*DoH' "$STATE/vpc-resolver.log"; then
        echo "ok    vpc-resolver's query log says transport DoH"
    else
        echo "FAIL  no DoH query in vpc-resolver's log"
        FAILED=1
    fi
    echo "where the forward rule's query came from (unbound's log):"
    if grep -q '10\.0\.1\.54 host\.corp\.example\.com\. A IN' "$STATE/unbound.log"; then
        echo "ok    unbound saw host.corp.example.com from 10.0.1.54 (the outbound endpoint)"
    else
        echo "FAIL  unbound never saw host.corp.example.com from 10.0.1.54"
        sed 's/^/      | /' "$STATE/unbound.log"
        FAILED=1
    fi
    [[ $FAILED == 0 ]] || die "some answers were wrong"
    echo "all answers as expected"
}

# Kills a process we started if it is still the one we started (its namespace is ours).
stop() {
    local pidfile=$STATE/$1.pid pid
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

down() {
    for name in vpc-resolver unbound internet; do stop "$name"; done
    for ns in "${ALL_NS[@]}"; do
        if [[ -e /run/netns/$ns ]]; then
            # Anything still running inside a namespace of ours was started by this script.
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
        rm -rf "/etc/netns/$ns"
    done
    rm -rf "$STATE"
}

case ${1:-} in
    up) up ;;
    test) run_tests ;;
    down) down ;;
    *) die "usage: $0 up|test|down" ;;
esac
