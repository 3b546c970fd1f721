#!/bin/sh
# docker/petrel-iptables.sh
# Traffic capture for Petrel as a sidecar, in the pod's network namespace: Istio's iptables
# layout (istio-iptables), with PETREL_* chain names, IPv4 nat table.
#
#   petrel-iptables.sh [apply] [options]   add the rules
#   petrel-iptables.sh clean               remove exactly the rules and chains apply added
#
# Options (Istio's istio-iptables letters):
#   -p PORT   outbound capture port (15001)       -z PORT   inbound capture port (15006)
#   -u UID    the proxy's uid, never captured (1337)
#   -g GID    the proxy's gid, never captured (1337)
#   -b PORTS  inbound ports to capture, comma-separated, or "*" for all (default "*")
#   -d PORTS  inbound ports not to capture (default "15090,15021,15020", Petrel's Prometheus,
#             health and agent ports, as Istio's injector passes them; 15008 always is)
#   -i CIDRS  outbound destinations to capture, comma-separated, or "*" (default "*")
#   -x CIDRS  outbound destinations not to capture
#   -q PORTS  outbound ports to capture even when -i excludes their address
#   -o PORTS  outbound ports not to capture
#
# The layout (rule for rule istio-iptables' output, Istio's testdata inbound-ports-wildcard):
# PREROUTING -> PETREL_INBOUND -> PETREL_IN_REDIRECT (REDIRECT to the inbound port); OUTPUT ->
# PETREL_OUTPUT -> PETREL_REDIRECT (REDIRECT to the outbound port). The
# proxy's own connections (uid/gid) return untouched, except its calls to the pod's own
# address over loopback, which go to the inbound port, as Istio does; the app's loopback
# traffic is not captured.
#
# One rule more than Istio's, in the filter table: PETREL_HOLD drops a connection's first SYN to
# the outbound port while nothing listens there (-m socket --nowildcard finds Petrel's 0.0.0.0
# listener). An app that starts calling out before Petrel is ready is then held, not refused:
# its kernel sends the SYN again (after 1 s, 3 s, 7 s, ...) and the first one after Petrel
# listens connects. Without it the redirected SYN meets no socket and the app gets a reset.
set -eu

IPT=${IPTABLES:-iptables}
OUT_PORT=15001
IN_PORT=15006
PROXY_UID=1337
PROXY_GID=1337
IN_INCLUDE='*'
IN_EXCLUDE='15090,15021,15020'
OUT_INCLUDE_CIDRS='*'
OUT_EXCLUDE_CIDRS=''
OUT_INCLUDE_PORTS=''
OUT_EXCLUDE_PORTS=''
# Istio's HBONE tunnel port, never captured by istio-iptables.
TUNNEL_PORT=15008

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

clean() {
    # Each step may find nothing to remove (a half-applied or already clean namespace).
    "$IPT" -t nat -D PREROUTING -p tcp -j PETREL_INBOUND 2>/dev/null || true
    "$IPT" -t nat -D OUTPUT -j PETREL_OUTPUT 2>/dev/null || true
    for chain in PETREL_OUTPUT PETREL_INBOUND PETREL_REDIRECT PETREL_IN_REDIRECT; do
        "$IPT" -t nat -F "$chain" 2>/dev/null || true
        "$IPT" -t nat -X "$chain" 2>/dev/null || true
    done
    # The jump names the port it was added with: remove every jump to the chain, whatever -p.
    while "$IPT" -t filter -S INPUT 2>/dev/null | grep -q -- '-j PETREL_HOLD'; do
        rule=$("$IPT" -t filter -S INPUT | grep -- '-j PETREL_HOLD' | head -n 1 | sed 's/^-A //')
        # shellcheck disable=SC2086 # the rule is iptables' own words, split as such
        "$IPT" -t filter -D $rule || break
    done
    "$IPT" -t filter -F PETREL_HOLD 2>/dev/null || true
    "$IPT" -t filter -X PETREL_HOLD 2>/dev/null || true
}

# Splits a comma-separated list into words.
split() {
    printf '%s\n' "$1" | tr ',' ' '
}

apply() {
    # Start from nothing of ours, so that applying twice gives one set of rules.
    clean
    "$IPT" -t nat -N PETREL_INBOUND
    "$IPT" -t nat -N PETREL_REDIRECT
    "$IPT" -t nat -N PETREL_IN_REDIRECT
    "$IPT" -t nat -N PETREL_OUTPUT

    "$IPT" -t nat -A PETREL_REDIRECT -p tcp -j REDIRECT --to-ports "$OUT_PORT"
    "$IPT" -t nat -A PETREL_IN_REDIRECT -p tcp -j REDIRECT --to-ports "$IN_PORT"

    # Inbound.
    for port in $(split "$TUNNEL_PORT,$IN_EXCLUDE"); do
        "$IPT" -t nat -A PETREL_INBOUND -p tcp --dport "$port" -j RETURN
    done
    if [ "$IN_INCLUDE" = '*' ]; then
        "$IPT" -t nat -A PETREL_INBOUND -p tcp -j PETREL_IN_REDIRECT
    else
        for port in $(split "$IN_INCLUDE"); do
            "$IPT" -t nat -A PETREL_INBOUND -p tcp --dport "$port" -j PETREL_IN_REDIRECT
        done
    fi
    "$IPT" -t nat -A PREROUTING -p tcp -j PETREL_INBOUND

    # Outbound.
    for port in $(split "$OUT_EXCLUDE_PORTS"); do
        "$IPT" -t nat -A PETREL_OUTPUT -p tcp --dport "$port" -j RETURN
    done
    "$IPT" -t nat -A PETREL_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN
    "$IPT" -t nat -A PETREL_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp ! --dport "$TUNNEL_PORT" -m owner --uid-owner "$PROXY_UID" -j PETREL_IN_REDIRECT
    "$IPT" -t nat -A PETREL_OUTPUT -o lo -m owner ! --uid-owner "$PROXY_UID" -j RETURN
    "$IPT" -t nat -A PETREL_OUTPUT -m owner --uid-owner "$PROXY_UID" -j RETURN
    "$IPT" -t nat -A PETREL_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp ! --dport "$TUNNEL_PORT" -m owner --gid-owner "$PROXY_GID" -j PETREL_IN_REDIRECT
    "$IPT" -t nat -A PETREL_OUTPUT -o lo -m owner ! --gid-owner "$PROXY_GID" -j RETURN
    "$IPT" -t nat -A PETREL_OUTPUT -m owner --gid-owner "$PROXY_GID" -j RETURN
    "$IPT" -t nat -A PETREL_OUTPUT -d 127.0.0.1/32 -j RETURN
    for port in $(split "$OUT_INCLUDE_PORTS"); do
        "$IPT" -t nat -A PETREL_OUTPUT -p tcp --dport "$port" -j PETREL_REDIRECT
    done
    for cidr in $(split "$OUT_EXCLUDE_CIDRS"); do
        "$IPT" -t nat -A PETREL_OUTPUT -d "$cidr" -j RETURN
    done
    if [ "$OUT_INCLUDE_CIDRS" = '*' ]; then
        "$IPT" -t nat -A PETREL_OUTPUT -j PETREL_REDIRECT
    else
        for cidr in $(split "$OUT_INCLUDE_CIDRS"); do
            "$IPT" -t nat -A PETREL_OUTPUT -d "$cidr" -j PETREL_REDIRECT
        done
    fi
    "$IPT" -t nat -A OUTPUT -j PETREL_OUTPUT

    # Held, not refused, until Petrel listens (see the top).
    "$IPT" -t filter -N PETREL_HOLD
    "$IPT" -t filter -A PETREL_HOLD -m socket --nowildcard -j RETURN
    "$IPT" -t filter -A PETREL_HOLD -j DROP
    "$IPT" -t filter -A INPUT -p tcp --syn --dport "$OUT_PORT" -j PETREL_HOLD
}

cmd=apply
case "${1:-}" in
apply | clean)
    cmd=$1
    shift
    ;;
esac
while getopts 'p:z:u:g:b:d:i:x:q:o:h' opt; do
    case "$opt" in
    p) OUT_PORT=$OPTARG ;;
    z) IN_PORT=$OPTARG ;;
    u) PROXY_UID=$OPTARG ;;
    g) PROXY_GID=$OPTARG ;;
    b) IN_INCLUDE=$OPTARG ;;
    d) IN_EXCLUDE=$OPTARG ;;
    i) OUT_INCLUDE_CIDRS=$OPTARG ;;
    x) OUT_EXCLUDE_CIDRS=$OPTARG ;;
    q) OUT_INCLUDE_PORTS=$OPTARG ;;
    o) OUT_EXCLUDE_PORTS=$OPTARG ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage

if [ "$cmd" = clean ]; then
    clean
    exit 0
fi
# A rule iptables refuses (a bad port or CIDR) must not leave half the layout behind.
set +e
(
    set -e
    apply
)
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    clean
    echo "petrel-iptables.sh: applying the rules failed; nothing was left applied" >&2
    exit 1
fi
