"""tests/e2e/test_61_dns.py -- ServiceEntry resolution DNS / DNS_ROUND_ROBIN and WorkloadEntry.

A real dnsmasq (--no-daemon, --no-resolv, --no-hosts, an --addn-hosts file, --local-ttl, and
--local=/petrel.test/ so that an unknown name there is NXDOMAIN) on
127.0.0.1:<ephemeral port> is Petrel's only DNS server (Proxy spec.dns.servers). Origins
listen on distinct loopback addresses (127.0.0.2, 127.0.0.3, ...) on one shared port, so
that the DNS answer alone decides where a request goes. Waits are bounded polls of /clusters
and /stats, never sleeps:

  - requests reach the resolved upstream; /clusters shows the addresses and the name;
  - a changed answer (hosts file rewritten, SIGHUP to dnsmasq) moves traffic once the TTL has
    run out, with no failed request while it happens;
  - a CNAME chain: the smallest TTL along it decides the refresh;
  - dnsmasq killed: the last good answer keeps serving, failures are counted;
  - DNS_ROUND_ROBIN: one address of the answer at a time;
  - resolution DNS without endpoints resolves the ServiceEntry host itself;
  - WorkloadEntry endpoints selected by a ServiceEntry's workloadSelector get traffic, in
    the ServiceEntry's namespace only;
  - before the first answer a DNS cluster answers 503 UH (a name dnsmasq does not know: NXDOMAIN,
    logged once as a warning naming the ServiceEntry).
"""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from netutil import free_port, http_request, wait_until
from petrel import ISTIO, gateway_doc, run_petrel, stats, to_yaml
from upstream import HttpOrigin

DNSMASQ = "/usr/sbin/dnsmasq"


class Dnsmasq:
    """dnsmasq serving the names of a hosts file (and --cname aliases) on 127.0.0.1:port."""

    def __init__(self, workdir, hosts, ttl, cnames=()):
        self.workdir = workdir
        self.hosts_file = os.path.join(workdir, "dns-hosts")
        self.ttl = ttl
        self.cnames = list(cnames)
        self.proc = None
        self.write_hosts(hosts)
        self.port = None

    def write_hosts(self, hosts):
        """hosts: a list of (address, name) pairs. Takes effect on start or reload()."""
        tmp = self.hosts_file + ".tmp"
        with open(tmp, "w") as f:
            for addr, name in hosts:
                f.write("%s %s\n" % (addr, name))
        os.replace(tmp, self.hosts_file)

    def start(self, port=None):
        self.port = port or free_udp_port()
        args = [DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--user=root", "--bind-interfaces", "--listen-address=127.0.0.1",
                "--port=%d" % self.port, "--addn-hosts=%s" % self.hosts_file,
                "--local-ttl=%d" % self.ttl, "--local=/petrel.test/", "--log-facility=%s" % os.path.join(self.workdir, "dnsmasq.log")]
        args += ["--cname=%s" % c for c in self.cnames]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.workdir, "dnsmasq.err"), "w"))
        wait_until(lambda: self.proc.poll() is not None or self._answers(), timeout=10,
                   what="dnsmasq to answer")
        assert self.proc.poll() is None, open(os.path.join(self.workdir, "dnsmasq.err")).read()

    def _answers(self):
        """A bare DNS query for a name it does not know: any reply means it is up."""
        q = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
             b"\x05probe\x04test\x00\x00\x01\x00\x01")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(q, ("127.0.0.1", self.port))
            return len(s.recv(512)) > 0
        except OSError:
            return False
        finally:
            s.close()

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def free_udp_port():
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both)."""
    for _ in range(50):
        port = free_port()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
    raise RuntimeError("no free UDP port")


@pytest.fixture
def dnsmasq(tmp_path):
    if not os.access(DNSMASQ, os.X_OK):
        pytest.skip("dnsmasq not installed (docker/install-deps.sh installs dnsmasq-base)")
    made = []

    def make(hosts, ttl=1, cnames=()):
        d = Dnsmasq(str(tmp_path), hosts, ttl, cnames)
        made.append(d)
        d.start()
        return d

    yield make
    for d in made:
        d.stop()


@pytest.fixture
def origins():
    """origins(["127.0.0.2", "127.0.0.3"]) -> HttpOrigins on those addresses, one port."""
    made = []

    def make(addresses):
        for _ in range(20):
            first = HttpOrigin(name=addresses[0], host=addresses[0])
            group = [first]
            try:
                for a in addresses[1:]:
                    group.append(HttpOrigin(name=a, host=a, port=first.port))
            except OSError:
                for o in group:
                    o.stop()
                continue
            made.extend(group)
            return group
        raise RuntimeError("no port free on every address")

    yield make
    for o in made:
        o.stop()


def vs_doc(host, port):
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "routes"},
            "spec": {"hosts": ["*"], "gateways": ["edge"],
                     "http": [{"route": [{"destination": {"host": host, "port": {"number": port}}}]}]}}


def dns_se(host, resolution, endpoints=None, port=80, target=None, name="svc", selector=None,
           namespace=None):
    spec = {"hosts": [host], "location": "MESH_EXTERNAL", "resolution": resolution,
            "ports": [dict({"number": port, "name": "http", "protocol": "HTTP"},
                           **({"targetPort": target} if target else {}))]}
    if endpoints is not None:
        spec["endpoints"] = endpoints
    if selector is not None:
        spec["workloadSelector"] = {"labels": selector}
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": ISTIO, "kind": "ServiceEntry", "metadata": meta, "spec": spec}


def dns_spec(dns, min_refresh="1s", max_refresh="30s"):
    return {"dns": {"servers": ["127.0.0.1:%d" % dns.port], "minRefresh": min_refresh,
                    "maxRefresh": max_refresh, "timeout": "500ms"}}


def which_origin(port):
    st, _, body = http_request(port, "GET", "/echo", host_header="svc.example")
    if st != 200:
        return st
    return json.loads(body)["origin"]


def cluster_addrs(p, cluster):
    """The endpoint addresses /clusters lists for cluster (address:port strings)."""
    _, body = p.admin_get("/clusters")
    out = set()
    for line in body.decode().splitlines():
        parts = line.split("::")
        if parts[0] == cluster and len(parts) >= 3 and parts[2] == "weight":
            out.add(parts[1])
    return out


def test_dns_endpoints_get_traffic_and_follow_a_changed_answer(petrel, dnsmasq, origins):
    a, b, c = origins(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    dns = dnsmasq([("127.0.0.2", "api.petrel.test"), ("127.0.0.3", "api.petrel.test")], ttl=1)
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]), vs_doc("svc.example", 80),
            dns_se("svc.example", "DNS", [{"address": "api.petrel.test",
                                            "ports": {"http": a.port}}])]
    p = petrel(docs, proxy_spec=dns_spec(dns))
    cl = "outbound|80||svc.example"
    want = {"127.0.0.2:%d" % a.port, "127.0.0.3:%d" % a.port}
    wait_until(lambda: cluster_addrs(p, cl) == want, timeout=15, what="both addresses in /clusters")
    _, body = p.admin_get("/clusters")
    assert "%s::127.0.0.2:%d::hostname::api.petrel.test" % (cl, a.port) in body.decode()
    seen = {which_origin(p.port) for _ in range(20)}
    assert seen == {"127.0.0.2", "127.0.0.3"}, seen

    # The answer changes: traffic moves to 127.0.0.4 once the 1 s TTL has run out, and every
    # request on the way succeeds (the old endpoints keep serving until the new snapshot).
    dns.write_hosts([("127.0.0.4", "api.petrel.test")])
    dns.reload()
    deadline = time.monotonic() + 20
    results = []
    while time.monotonic() < deadline:
        results.append(which_origin(p.port))
        if results[-1] == "127.0.0.4" and cluster_addrs(p, cl) == {"127.0.0.4:%d" % a.port}:
            break
    assert results[-1] == "127.0.0.4", results[-10:]
    assert all(r in ("127.0.0.2", "127.0.0.3", "127.0.0.4") for r in results), \
        [r for r in results if not isinstance(r, str)]
    assert [which_origin(p.port) for _ in range(10)] == ["127.0.0.4"] * 10
    s = stats(p)
    assert s["dns_answer_changes"] >= 2 and s["dns_queries"] >= 2, s
    assert s["dns_failures"] == 0, s


def test_cname_chain_smallest_ttl_decides_the_refresh(petrel, dnsmasq, origins):
    a, b = origins(["127.0.0.2", "127.0.0.3"])
    # The address record lives 3600 s; the CNAME in front of it 1 s: Petrel must ask again
    # after about 1 s (minRefresh 1s), not after an hour.
    dns = dnsmasq([("127.0.0.2", "real.petrel.test")], ttl=3600,
                  cnames=["alias.petrel.test,real.petrel.test,1"])
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]), vs_doc("svc.example", 80),
            dns_se("svc.example", "DNS", [{"address": "alias.petrel.test",
                                            "ports": {"http": a.port}}])]
    p = petrel(docs, proxy_spec=dns_spec(dns, max_refresh="3600s"))
    wait_until(lambda: which_origin(p.port) == "127.0.0.2", timeout=15, what="first answer")
    dns.write_hosts([("127.0.0.3", "real.petrel.test")])
    dns.reload()
    wait_until(lambda: which_origin(p.port) == "127.0.0.3", timeout=15,
               what="traffic to follow the CNAME's 1 s TTL")
    # And the answer is not asked for more often than the TTL allows (minRefresh 1 s): over
    # a few seconds, queries stay well under one per 100 ms.
    q0, t0 = stats(p)["dns_queries"], time.monotonic()
    wait_until(lambda: time.monotonic() - t0 >= 3, timeout=10, what="3 seconds")
    q1 = stats(p)["dns_queries"]
    assert 1 <= q1 - q0 <= 8, (q0, q1)


def test_resolver_failure_keeps_the_last_good_answer(petrel, dnsmasq, origins):
    (a,) = origins(["127.0.0.2"])
    dns = dnsmasq([("127.0.0.2", "api.petrel.test")], ttl=1)
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]), vs_doc("svc.example", 80),
            dns_se("svc.example", "DNS", [{"address": "api.petrel.test",
                                            "ports": {"http": a.port}}])]
    p = petrel(docs, proxy_spec=dns_spec(dns))
    wait_until(lambda: which_origin(p.port) == "127.0.0.2", timeout=15, what="first answer")
    dns.stop()
    wait_until(lambda: stats(p)["dns_failures"] >= 2, timeout=20, what="failed refreshes")
    assert [which_origin(p.port) for _ in range(10)] == ["127.0.0.2"] * 10
    assert cluster_addrs(p, "outbound|80||svc.example") == {"127.0.0.2:%d" % a.port}
    # Logged once per change of outcome, not once per retry.
    warn = [l for l in p.stderr().splitlines() if "dns: api.petrel.test" in l and "keeping" in l]
    assert len(warn) == 1, warn
    # The server comes back with a new answer: it is taken.
    dns.write_hosts([("127.0.0.2", "api.petrel.test")])
    dns.start(port=dns.port)
    wait_until(lambda: "resolves again" in p.stderr(), timeout=30, what="recovery logged")


def test_dns_round_robin_uses_one_address(petrel, dnsmasq, origins):
    a, b = origins(["127.0.0.2", "127.0.0.3"])
    dns = dnsmasq([("127.0.0.2", "api.petrel.test"), ("127.0.0.3", "api.petrel.test")], ttl=1)
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]), vs_doc("svc.example", 80),
            dns_se("svc.example", "DNS_ROUND_ROBIN", [{"address": "api.petrel.test",
                                                        "ports": {"http": a.port}}])]
    p = petrel(docs, proxy_spec=dns_spec(dns))
    cl = "outbound|80||svc.example"
    addrs = wait_until(lambda: cluster_addrs(p, cl), timeout=15, what="an endpoint")
    assert len(addrs) == 1, addrs
    one = next(iter(addrs)).split(":")[0]
    assert {which_origin(p.port) for _ in range(20)} == {one}


def test_dns_without_endpoints_resolves_the_host(petrel, dnsmasq, origins):
    (a,) = origins(["127.0.0.2"])
    dns = dnsmasq([("127.0.0.2", "svc.example")], ttl=1)
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]), vs_doc("svc.example", 80),
            dns_se("svc.example", "DNS", target=a.port)]
    p = petrel(docs, proxy_spec=dns_spec(dns))
    wait_until(lambda: which_origin(p.port) == "127.0.0.2", timeout=15, what="the host resolved")


def test_unknown_name_has_no_endpoints(petrel, dnsmasq, origins):
    (a,) = origins(["127.0.0.2"])
    dns = dnsmasq([("127.0.0.2", "api.petrel.test")], ttl=1)
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]), vs_doc("svc.example", 80),
            dns_se("svc.example", "DNS", [{"address": "missing.petrel.test",
                                            "ports": {"http": a.port}}])]
    p = petrel(docs, proxy_spec=dns_spec(dns))
    wait_until(lambda: stats(p)["dns_answers"] + stats(p)["dns_failures"] >= 1, timeout=15,
               what="an answer")
    assert which_origin(p.port) == 503
    _, body = p.admin_get("/clusters")
    assert "outbound|80||svc.example::no_endpoints" in body.decode()
    # A name that does not exist is a warning naming it and its ServiceEntry, said once and
    # not again at each refresh.
    wait_until(lambda: stats(p)["dns_queries"] >= 3, timeout=15, what="refreshes")
    warn = [l for l in p.stderr().splitlines() if "NXDOMAIN" in l]
    assert len(warn) == 1, p.stderr()
    assert (" warning dns: missing.petrel.test (ServiceEntry default/svc): NXDOMAIN, the name "
            "does not exist" in warn[0]), warn


def workload_entry(name, address, labels, ns=None, weight=None, port=None):
    spec = {"address": address, "labels": labels}
    if weight is not None:
        spec["weight"] = weight
    if port is not None:
        spec["ports"] = {"http": port}
    meta = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"apiVersion": ISTIO, "kind": "WorkloadEntry", "metadata": meta, "spec": spec}


def test_workload_entries_selected_by_labels_get_traffic(petrel, dnsmasq, origins):
    a, b, c = origins(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    dns = dnsmasq([("127.0.0.3", "vm.petrel.test")], ttl=1)
    port = free_port()
    docs = [gateway_doc([(port, "HTTP")]), vs_doc("svc.example", 80),
            dns_se("svc.example", "DNS", selector={"app": "vm"}, target=a.port),
            workload_entry("vm-a", "127.0.0.2", {"app": "vm", "v": "1"}),
            workload_entry("vm-b", "vm.petrel.test", {"app": "vm"}),
            # not selected: other labels, or another namespace
            workload_entry("other", "127.0.0.4", {"app": "db"}),
            workload_entry("vm-elsewhere", "127.0.0.4", {"app": "vm"}, ns="elsewhere")]
    p = petrel(docs, proxy_spec=dns_spec(dns))
    cl = "outbound|80||svc.example"
    want = {"127.0.0.2:%d" % a.port, "127.0.0.3:%d" % a.port}
    wait_until(lambda: cluster_addrs(p, cl) == want, timeout=15, what="both workloads")
    assert {which_origin(p.port) for _ in range(20)} == {"127.0.0.2", "127.0.0.3"}


def test_validate_reports_dns_rules(tmp_path):
    bad = [dns_se("*.wild.example", "DNS", name="wild"),
           dns_se("rr.example", "DNS_ROUND_ROBIN", name="rr",
                  endpoints=[{"address": "a.example"}, {"address": "b.example"}]),
           dns_se("both.example", "DNS", name="both", endpoints=[{"address": "a.example"}],
                  selector={"app": "x"}),
           dns_se("st.example", "STATIC", name="st", endpoints=[{"address": "a.example"}]),
           {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy", "metadata": {"name": "p"},
            "spec": {"dns": {"servers": ["dns.example:53"], "minRefresh": "5s",
                             "maxRefresh": "1s"}}},
           workload_entry("we", "not a name!", {"app": "x"})]
    f = tmp_path / "bad.yaml"
    f.write_text(to_yaml(bad))
    r = run_petrel(["validate", str(f)])
    assert r.returncode == 1
    err = r.stderr
    for needle in ("spec.hosts: hosts must be names, not wildcards",
                   "spec.endpoints: resolution DNS_ROUND_ROBIN takes at most one endpoint",
                   "spec.workloadSelector: only one of workloadSelector or endpoints",
                   "spec.endpoints[0].address: must be an IPv4 or IPv6 address with resolution STATIC",
                   "spec.dns.servers[0]: must be an IP address",
                   "spec.dns.maxRefresh: must not be below minRefresh",
                   "spec.address: must be an IP address or a DNS name"):
        assert needle in err, (needle, err)
