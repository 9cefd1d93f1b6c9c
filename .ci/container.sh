#!/usr/bin/env bash
# The container check (README.md, "Container"): builds the image from the release binary with rootful podman,
# nothing pulled from any registry, and checks it with real clients:
#   1. first run, no arguments, published port: dig over UDP and TCP gets the embedded lab's private answers;
#   2. --cap-drop ALL --cap-add NET_BIND_SERVICE --read-only --security-opt no-new-privileges, IPv4 and IPv6;
#      --cap-drop ALL alone refuses to start (the file capability needs NET_BIND_SERVICE in the bounding set);
#   3. `podman kube play` of examples/kubernetes: every replica answers, the securityContext holds, the liveness
#      probe passes, an edited ConfigMap is reloaded through --watch;
#   4. the two-site compose demo with podman-compose 1.6, checked by examples/hybrid/demo.sh's own questions.
# Installs what it needs from Debian (podman, runc, netavark, ...) and podman-compose into a virtual environment.
# Only loopback and container addresses are queried. Needs root.
#
# Environment: CONTAINER_WORK (default ${TMPDIR:-/tmp}/vpcr-container: base tarballs, the venv, scratch files).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export PATH=$PATH:/usr/sbin:/sbin

log() { printf '%s\n' "$*" >&2; }
die() { log "container.sh: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "needs root (rootful podman, network namespaces)"

# One run per machine at a time: the manifests and the compose file fix their pod, volume and network names.
if [[ -z ${VPCR_CONTAINER_LOCKED:-} ]]; then
    exec env VPCR_CONTAINER_LOCKED=1 flock /tmp/vpcr-container.lock bash "$0" "$@"
fi

WORK=${CONTAINER_WORK:-${TMPDIR:-/tmp}/vpcr-container}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
IMAGE=localhost/vpc-resolver:$VERSION
# What `FROM docker.io/library/debian:bookworm-slim` and compose's `image: vpc-resolver-hybrid-tools` resolve to.
BASE=docker.io/library/debian:bookworm-slim
TOOLS=localhost/vpc-resolver-hybrid-tools:latest
COMPOSE_FILE=examples/hybrid/compose.yaml
COMPOSE_PROJECT=vpc-resolver-hybrid
NS_PREFIX=vpcr-compose
V6_NET=vpcr-ci-v6
STARTED=$SECONDS
mkdir -p "$WORK"

phase() { log "== $* (${SECONDS}s)"; }
ok() { printf 'ok    %s\n' "$*"; }
# fail WHAT [CONTAINER...]: the message and the containers' logs, then exit 1.
fail() {
    local what=$1
    shift
    for c in "$@"; do
        log "--- podman logs $c:"
        podman logs "$c" 2>&1 | tail -40 >&2 || true
    done
    die "FAIL: $what"
}

install_packages() {
    local want=(podman runc netavark aardvark-dns uidmap mmdebstrap iptables catatonit conmon python3-venv
        bind9-dnsutils iproute2 util-linux) missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# Rootful podman on machines whose PID 1 is not systemd, with cgroup v1 and a hard nofile limit.
configure_podman() {
    local nofile
    nofile=$(ulimit -Hn)
    [[ $nofile == unlimited || $nofile -gt 20000 ]] && nofile=20000
    local conf
    conf=$(cat <<EOF
# Written by vpc-resolver's .ci/container.sh.
[containers]
# The rootful default ulimits exceed what root may set here ("setrlimit RLIMIT_NOFILE: Operation not permitted").
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"     # PID 1 is not systemd
events_logger = "file"
runtime = "runc"                # crun's cgroup v2 hybrid mode fails here
[network]
network_backend = "netavark"    # CNI rejects the compose demo's static addresses outside ip_range
EOF
)
    mkdir -p /etc/containers
    if [[ ! -f /etc/containers/containers.conf ]] || [[ $(cat /etc/containers/containers.conf) != "$conf" ]]; then
        [[ -f /etc/containers/containers.conf ]] && cp /etc/containers/containers.conf "$WORK/containers.conf.before"
        printf '%s\n' "$conf" >/etc/containers/containers.conf
    fi
    [[ $(podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.NetworkBackend}}' 2>/dev/null) == "runc netavark" ]] \
        || die "podman is not using runc and netavark after writing /etc/containers/containers.conf"
}

# local_image NAME TARBALL [PACKAGES]: a Debian bookworm minbase (plus packages) imported as NAME, built from
# the host's apt sources, unless NAME exists.
local_image() {
    local name=$1 tar=$2 include=${3:-}
    podman image exists "$name" && return 0
    log "making $name with mmdebstrap"
    mmdebstrap --quiet --variant=minbase ${include:+--include="$include"} bookworm "$tar"
    podman import --quiet "$tar" "$name" >/dev/null
    rm -f "$tar"
}

build_image() {
    cargo build --release --locked --bin vpc-resolver
    local ctx=$WORK/builder
    rm -rf "$ctx" && mkdir -p "$ctx"
    cp "${CARGO_TARGET_DIR:-target}/release/vpc-resolver" "$ctx/vpc-resolver"
    podman build --quiet --format docker --pull=never --build-context "builder=$ctx" --build-arg "VERSION=$VERSION" \
        -t "$IMAGE" -t localhost/vpc-resolver:latest -f Dockerfile . >/dev/null
    local label
    label=$(podman image inspect "$IMAGE" --format '{{index .Labels "org.opencontainers.image.version"}}')
    [[ $label == "$VERSION" ]] || fail "label org.opencontainers.image.version is [$label], want [$VERSION]"
    [[ $(podman image inspect "$IMAGE" --format '{{.Config.User}}') == 65532:65532 ]] || fail "USER is not 65532:65532"
    ok "image $IMAGE built from target/release/vpc-resolver"
}

# A loopback port free for both UDP and TCP.
free_port() {
    python3 - <<'EOF'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); port = t.getsockname()[1]
    u = socket.socket(type=socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port)); break
    except OSError:
        pass
    finally:
        u.close(); t.close()
print(port)
EOF
}

# answers SERVER PORT NAME [DIG-OPTION...]: the A records, sorted, space-separated ("" when none).
answers() {
    local server=$1 port=$2 name=$3
    shift 3
    { dig +short +time=1 +tries=1 -p "$port" "@$server" "$name" A "$@" 2>/dev/null || true; } \
        | { grep -E '^[0-9]+(\.[0-9]+){3}$' || true; } | sort -V | paste -sd' '
}

# expect WHAT WANT SERVER PORT NAME [DIG-OPTION...]: polls (at most 20 s) until the answer is WANT.
expect() {
    local what=$1 want=$2 server=$3 port=$4 name=$5 got=""
    shift 5
    local deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        got=$(answers "$server" "$port" "$name" "$@")
        [[ $got == "$want" ]] && { ok "$what: $got"; return 0; }
        sleep 0.2
    done
    return 1
}

# lab_answer NAME [TOPOLOGY]: what the release binary answers a loopback client from the same topology (the
# embedded one by default); the container must give the same.
lab_answer() {
    local name=$1 topology=${2:-} port pid got=""
    port=$(free_port)
    "${CARGO_TARGET_DIR:-target}/release/vpc-resolver" serve ${topology:+"$topology"} --listen "127.0.0.1:$port" \
        >/dev/null 2>&1 &
    pid=$!
    local deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)) && [[ -z $got ]]; do
        got=$(answers 127.0.0.1 "$port" "$name")
        [[ -n $got ]] || sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [[ -n $got ]] || die "the release binary did not answer $name on 127.0.0.1:$port"
    printf '%s\n' "$got"
}

# in_lab ADDRESSES...: every address inside the lab VPC 10.0.0.0/16.
in_lab() {
    local a
    for a in "$@"; do [[ $a == 10.0.* ]] || return 1; done
}

# security ROLE CONTAINER: runs as 65532 with only NET_BIND_SERVICE, no_new_privs, read-only root.
security() {
    local role=$1 c=$2 status
    status=$(podman exec "$c" cat /proc/1/status)
    grep -q '^Uid:[[:space:]]*65532' <<<"$status" || fail "$role: not running as uid 65532" "$c"
    grep -q '^CapEff:[[:space:]]*0000000000000400$' <<<"$status" || fail "$role: effective capabilities are not just NET_BIND_SERVICE: $(grep CapEff <<<"$status")" "$c"
    grep -q '^NoNewPrivs:[[:space:]]*1$' <<<"$status" || fail "$role: no_new_privs is not set" "$c"
    if podman exec "$c" sh -c ': > /written' 2>/dev/null; then fail "$role: the root file system is writable" "$c"; fi
    ok "$role: uid 65532, CapEff 0x400 (NET_BIND_SERVICE), no_new_privs, read-only root"
}

# Removes whatever this script starts (also what an interrupted earlier run left behind).
remove_all() {
    # shellcheck disable=SC2086 # the log followers' pids
    [[ -n ${FOLLOW_PID:-} ]] && kill $FOLLOW_PID 2>/dev/null
    podman rm -f -t 0 vpcr-ci-first vpcr-ci-hardened vpcr-ci-dropall >/dev/null 2>&1
    podman pod ps -q --filter name='^vpc-resolver-pod-[0-9]+$' | xargs -r podman pod rm -f -t 0 >/dev/null 2>&1
    podman volume rm -f vpc-resolver-topology >/dev/null 2>&1
    if [[ -x $WORK/venv/bin/podman-compose ]]; then
        "$WORK/venv/bin/podman-compose" -f "$COMPOSE_FILE" down -t 1 >/dev/null 2>&1
    fi
    podman ps -a -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" | xargs -r podman rm -f -t 0 >/dev/null 2>&1
    podman network rm -f "$V6_NET" "${COMPOSE_PROJECT}_vpc" "${COMPOSE_PROJECT}_onprem" >/dev/null 2>&1
    # kube play's network, unless something else still uses it (no -f).
    podman network rm podman-default-kube-network >/dev/null 2>&1
    for c in vpc-client onprem-client onprem; do
        ip netns delete "$NS_PREFIX-$c" 2>/dev/null
        rm -rf "/etc/netns/$NS_PREFIX-$c"
    done
    rm -rf "$WORK/compose-state" "$WORK/kube.yaml" "$WORK/topology-edited.yaml"
    return 0
}

cleanup() {
    local rc=$?
    set +e
    remove_all
    log "container.sh: $([[ $rc == 0 ]] && echo passed || echo FAILED) in ${SECONDS}s"
    exit "$rc"
}

test_first_run() {
    local port lab c=vpcr-ci-first
    port=$(free_port)
    lab=$(lab_answer ec2.us-east-1.amazonaws.com)
    # shellcheck disable=SC2086 # a list of addresses
    in_lab $lab && [[ $(wc -w <<<"$lab") == 3 ]] || die "the embedded lab's ec2 answer is [$lab], not 3 addresses in 10.0.0.0/16"
    podman run -d --name "$c" -p "127.0.0.1:$port:53/udp" -p "127.0.0.1:$port:53/tcp" "$IMAGE" >/dev/null 2>&1 \
        || fail "podman run $IMAGE (no arguments) did not start"
    expect "first run, published port, udp: ec2.us-east-1.amazonaws.com" "$lab" 127.0.0.1 "$port" \
        ec2.us-east-1.amazonaws.com || fail "dig over the published udp port did not get [$lab]" "$c"
    expect "first run, published port, tcp: ec2.us-east-1.amazonaws.com" "$lab" 127.0.0.1 "$port" \
        ec2.us-east-1.amazonaws.com +tcp || fail "dig over the published tcp port did not get [$lab]" "$c"
    expect "first run, published port: db.lab.internal (private hosted zone)" 10.0.1.100 127.0.0.1 "$port" \
        db.lab.internal || fail "db.lab.internal is not 10.0.1.100" "$c"
    podman healthcheck run "$c" >/dev/null 2>&1 || fail "the image's HEALTHCHECK (vpc-resolver probe) failed" "$c"
    ok "first run: HEALTHCHECK passes"
    for proto in "" --tcp; do
        podman exec "$c" /usr/local/bin/vpc-resolver probe '[::1]:53' $proto >/dev/null \
            || fail "nothing answers on [::1]:53 ${proto:-udp} inside the container" "$c"
    done
    ok "first run: listening on IPv6 too ([::1]:53 udp and tcp)"
    podman rm -f -t 0 "$c" >/dev/null 2>&1
}

test_hardened() {
    local port lab v6 c=vpcr-ci-hardened
    port=$(free_port)
    lab=$(lab_answer ec2.us-east-1.amazonaws.com)
    if [[ $(cat /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null || echo 1) != 0 ]]; then
        [[ ${CI:-} == true ]] && die "IPv6 is disabled on this host (net.ipv6.conf.all.disable_ipv6); the IPv6 check needs it"
        log "NOTICE: IPv6 is disabled on this host; the IPv6 part of the hardened check does not run"
        v6=""
    else
        podman network create --ipv6 --subnet 10.89.53.0/24 --subnet fd00:53:c1::/64 "$V6_NET" >/dev/null
        v6=--network=$V6_NET
    fi
    podman run -d --name "$c" --cap-drop ALL --cap-add NET_BIND_SERVICE --read-only \
        --security-opt no-new-privileges ${v6:+"$v6"} \
        -p "127.0.0.1:$port:53/udp" -p "127.0.0.1:$port:53/tcp" "$IMAGE" >/dev/null 2>&1 \
        || fail "podman run with the hardened flags did not start"
    expect "hardened, published port, udp" "$lab" 127.0.0.1 "$port" ec2.us-east-1.amazonaws.com \
        || fail "hardened: udp answer is not [$lab]" "$c"
    expect "hardened, published port, tcp" "$lab" 127.0.0.1 "$port" ec2.us-east-1.amazonaws.com +tcp \
        || fail "hardened: tcp answer is not [$lab]" "$c"
    security "hardened container" "$c"
    if [[ -n $v6 ]]; then
        local addr
        addr=$(podman inspect "$c" --format "{{(index .NetworkSettings.Networks \"$V6_NET\").GlobalIPv6Address}}")
        [[ -n $addr ]] || fail "the container has no IPv6 address on $V6_NET" "$c"
        # From the host: the source is the network's IPv6 gateway, a ULA (fc00::/7), so the lab's view.
        expect "hardened, IPv6 $addr, udp" "$lab" "$addr" 53 ec2.us-east-1.amazonaws.com \
            || fail "no lab answer over IPv6 udp from $addr" "$c"
        expect "hardened, IPv6 $addr, tcp" "$lab" "$addr" 53 ec2.us-east-1.amazonaws.com +tcp \
            || fail "no lab answer over IPv6 tcp from $addr" "$c"
    fi
    podman rm -f -t 0 "$c" >/dev/null 2>&1
    # The documented refusal: without NET_BIND_SERVICE in the bounding set the kernel will not exec the binary.
    local out
    if out=$(podman run --name vpcr-ci-dropall --cap-drop ALL "$IMAGE" 2>&1); then
        fail "--cap-drop ALL without --cap-add NET_BIND_SERVICE started: $out"
    fi
    grep -qi 'operation not permitted' <<<"$out" || fail "--cap-drop ALL failed otherwise than documented: $out"
    podman rm -f -t 0 vpcr-ci-dropall >/dev/null 2>&1
    ok "--cap-drop ALL alone: refused (exec: operation not permitted), as documented"
}

# topology_of CONFIGMAP: the ConfigMap's data.topology.yaml (the last key of data, a `|` block).
topology_of() {
    sed -n '/^  topology.yaml: |$/,$p' "$1" | tail -n +2 | sed 's/^    //'
}

# pod_ip POD: the address of a pod on its network (held by its infra container).
pod_ip() {
    local infra
    infra=$(podman pod inspect "$1" --format '{{.InfraContainerID}}')
    podman inspect "$infra" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'
}

test_kube() {
    local dir=examples/kubernetes replicas pods=() ips=() lab db
    # The kustomization's resources, in its order, as one stream (podman ignores kinds it does not run).
    local resources
    resources=$(sed -n '/^resources:/,/^[a-z]/s/^  - //p' "$dir/kustomization.yaml")
    [[ -n $resources ]] || die "no resources in $dir/kustomization.yaml"
    : >"$WORK/kube.yaml"
    for r in $resources; do
        cat "$dir/$r" >>"$WORK/kube.yaml"
        printf -- '---\n' >>"$WORK/kube.yaml"
    done
    topology_of "$dir/configmap.yaml" >"$WORK/topology-cm.yaml"
    "${CARGO_TARGET_DIR:-target}/release/vpc-resolver" check "$WORK/topology-cm.yaml" >/dev/null \
        || die "the ConfigMap's topology does not pass check"
    lab=$(lab_answer ec2.us-east-1.amazonaws.com "$WORK/topology-cm.yaml")
    db=$(lab_answer db.lab.internal "$WORK/topology-cm.yaml")
    podman kube play "$WORK/kube.yaml" >"$WORK/kube-play.log" 2>&1 || { cat "$WORK/kube-play.log" >&2; fail "podman kube play failed"; }
    replicas=$(sed -n 's/^  replicas: \([0-9]*\)$/\1/p' "$dir/deployment.yaml")
    for ((i = 0; i < replicas; i++)); do
        pods+=("vpc-resolver-pod-$i")
        ips+=("$(pod_ip "vpc-resolver-pod-$i")")
    done
    local c
    for i in "${!pods[@]}"; do
        c=${pods[$i]}-vpc-resolver
        [[ -n ${ips[$i]} ]] || fail "pod ${pods[$i]} has no address" "$c"
        # From the host the source is the pod network's gateway: a private range the ConfigMap allows.
        expect "kube ${pods[$i]} (${ips[$i]}) udp: ec2" "$lab" "${ips[$i]}" 53 ec2.us-east-1.amazonaws.com \
            || fail "${pods[$i]} did not answer [$lab] over udp" "$c"
        expect "kube ${pods[$i]} (${ips[$i]}) tcp: db.lab.internal" "$db" "${ips[$i]}" 53 db.lab.internal +tcp \
            || fail "${pods[$i]} did not answer [$db] over tcp" "$c"
        security "kube ${pods[$i]}" "$c"
        podman healthcheck run "$c" >/dev/null 2>&1 || fail "${pods[$i]}: the livenessProbe (vpc-resolver probe) failed" "$c"
        ok "kube ${pods[$i]}: livenessProbe passes"
    done
    # The ConfigMap edited, then updated in place as the kubelet does (a new file renamed over the old one);
    # `--watch` must reload it in every replica.
    sed 's/values: \[10\.0\.1\.100\]/values: [10.0.1.123]/' "$dir/configmap.yaml" >"$WORK/configmap-edited.yaml"
    topology_of "$WORK/configmap-edited.yaml" >"$WORK/topology-edited.yaml"
    grep -q 10.0.1.123 "$WORK/topology-edited.yaml" || die "the ConfigMap edit did not apply (db's value)"
    local vol
    vol=$(podman volume inspect vpc-resolver-topology --format '{{.Mountpoint}}')
    cp "$WORK/topology-edited.yaml" "$vol/.topology.yaml.new"
    mv "$vol/.topology.yaml.new" "$vol/topology.yaml"
    for i in "${!pods[@]}"; do
        expect "kube ${pods[$i]}: the edited ConfigMap is served (reload by --watch)" 10.0.1.123 "${ips[$i]}" 53 \
            db.lab.internal || fail "${pods[$i]} still does not answer 10.0.1.123 after the ConfigMap edit" \
            "${pods[$i]}-vpc-resolver"
    done
    podman kube down "$WORK/kube.yaml" >/dev/null 2>&1 || fail "podman kube down failed"
    podman volume rm -f vpc-resolver-topology >/dev/null
    rm -f "$WORK/kube.yaml" "$WORK/configmap-edited.yaml" "$WORK/topology-cm.yaml"
}

# compose_container SERVICE: the container podman-compose started for SERVICE.
compose_container() {
    podman ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT" \
        --filter "label=com.docker.compose.service=$1" | head -1
}

test_compose() {
    if [[ ! -x $WORK/venv/bin/podman-compose ]]; then
        python3 -m venv "$WORK/venv"
        "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check 'podman-compose>=1.6,<1.7'
    fi
    local compose=("$WORK/venv/bin/podman-compose" -f "$COMPOSE_FILE")
    "${compose[@]}" up -d >"$WORK/compose-up.log" 2>&1 || { cat "$WORK/compose-up.log" >&2; fail "podman-compose up failed"; }
    local vc oc un vr
    vc=$(compose_container vpc-client)
    oc=$(compose_container onprem-client)
    un=$(compose_container unbound)
    vr=$(compose_container vpc-resolver)
    [[ -n $vc && -n $oc && -n $un && -n $vr ]] || { cat "$WORK/compose-up.log" >&2; fail "not every compose service is running"; }
    # The README's walkthrough, inside the client containers.
    local deadline=$((SECONDS + 20)) got=""
    while ((SECONDS < deadline)); do
        got=$("${compose[@]}" exec -T vpc-client dig +short +time=1 +tries=1 ec2.us-east-1.amazonaws.com 2>/dev/null | sort -V | paste -sd' ' || true)
        [[ $got == "10.0.1.10 10.0.2.10" ]] && break
        sleep 0.2
    done
    [[ $got == "10.0.1.10 10.0.2.10" ]] || fail "compose: vpc-client's dig ec2 got [$got]" "$vr" "$(compose_container vpc-net)"
    ok "compose exec vpc-client dig +short ec2.us-east-1.amazonaws.com: $got"
    got=$("${compose[@]}" exec -T onprem-client dig +short +time=2 +tries=1 s3.us-east-1.amazonaws.com 2>/dev/null | sort -V | paste -sd' ' || true)
    [[ $got == "10.0.1.12 10.0.2.12" ]] || fail "compose: onprem-client's dig s3 got [$got]" "$vr" "$un"
    ok "compose exec onprem-client dig +short s3.us-east-1.amazonaws.com: $got"
    # demo.sh's own questions and expected answers, asked from inside the two clients' network namespaces (named
    # for `ip netns exec`, with the resolv.conf the compose file mounts) and checked against unbound's live log.
    local state=$WORK/compose-state
    rm -rf "$state" && mkdir -p "$state"
    for pair in "vpc-client:$vc:resolv-vpc.conf" "onprem-client:$oc:resolv-onprem.conf" "onprem:$un:"; do
        IFS=: read -r service id resolv <<<"$pair"
        ip netns attach "$NS_PREFIX-$service" "$(podman inspect "$id" --format '{{.State.Pid}}')"
        [[ -n $resolv ]] || continue
        mkdir -p "/etc/netns/$NS_PREFIX-$service"
        cp "examples/hybrid/$resolv" "/etc/netns/$NS_PREFIX-$service/resolv.conf"
    done
    podman logs -f "$un" >"$state/unbound.log" 2>&1 &
    FOLLOW_PID=$!
    podman logs -f "$vr" >"$state/vpc-resolver.log" 2>&1 &
    FOLLOW_PID="$FOLLOW_PID $!"
    local out bad
    out=$(DEMO_PREFIX=$NS_PREFIX DEMO_STATE=$state bash examples/hybrid/demo.sh test 2>&1) || true
    printf '%s\n' "$out"
    # The compose demo serves Do53 only (it has no certificate), so a DNS-over-HTTPS section of demo.sh, where
    # present, is not asked of it; every other check must pass, and the Do53 questions must all have been asked.
    bad=$(awk '/^[^ ].*:$/ { doh = /DNS over HTTPS/ } /^FAIL/ && !doh' <<<"$out")
    [[ -z $bad ]] || fail "compose: demo.sh's checks failed: $bad" "$vr" "$un"
    grep -q '^DNS over HTTPS' <<<"$out" && log "(compose: demo.sh's DNS-over-HTTPS section is not asked of the compose demo, which has no certificate)"
    [[ $(awk '/^[^ ].*:$/ { doh = /DNS over HTTPS/ } /^ok/ && !doh' <<<"$out" | wc -l) -ge 19 ]] \
        || fail "compose: demo.sh asked fewer questions than its 19 Do53 checks" "$vr" "$un"
    grep -q '^ok .*unbound saw host.corp.example.com from 10.0.1.54' <<<"$out" \
        || fail "compose: unbound did not see the forward rule's query from 10.0.1.54" "$vr" "$un"
    # shellcheck disable=SC2086 # two pids
    kill $FOLLOW_PID 2>/dev/null || true
    FOLLOW_PID=""
    "${compose[@]}" down -t 1 >/dev/null 2>&1 || fail "podman-compose down failed"
}

phase "packages and podman configuration"
install_packages
configure_podman
phase "base images (mmdebstrap, nothing pulled)"
local_image "$BASE" "$WORK/base.tar"
local_image "$TOOLS" "$WORK/tools.tar" unbound,dnsmasq-base,bind9-dnsutils,iproute2
phase "release build and image"
build_image
remove_all || true   # errexit is off inside: every removal is attempted
trap cleanup EXIT
phase "first run"
test_first_run
phase "hardened flags"
test_hardened
phase "podman kube play examples/kubernetes"
test_kube
phase "compose demo (podman-compose)"
test_compose
phase "done"
