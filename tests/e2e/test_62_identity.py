"""tests/e2e/test_62_identity.py -- the workload identity's certificate files (Proxy
spec.identity), watched like the config: a rotated certificate makes a new snapshot (new
handshakes use it), a broken one is refused and the running identity stays, and a missing one
refuses the start with the file named.

Certificates are made with tests/lib/certs.py into the test's directory.
"""

import os

from certs import make_ca, make_leaf
from netutil import free_port, http_request, wait_until
from petrel import Petrel, need_petrel, simple_config, stats
from upstream import HttpOrigin


def install(d, name, dest_crt, dest_key):
    """Puts <name>'s files in place the way rotation tools do: write aside, then rename."""
    for src, dst in ((d / (name + ".crt"), dest_crt), (d / (name + ".key"), dest_key)):
        tmp = str(dst) + ".new"
        with open(src, "rb") as f, open(tmp, "wb") as g:
            g.write(f.read())
        os.rename(tmp, dst)


def identity_spec(d):
    return {"identity": {"certificateChain": str(d / "cert.pem"),
                         "privateKey": str(d / "key.pem"),
                         "rootCertificates": str(d / "roots.crt")}}


def test_rotated_certificate_reloads_and_a_broken_one_is_refused(tmp_path, petrel):
    d = tmp_path / "certs"
    d.mkdir()
    ca = make_ca(d, "roots")
    make_leaf(d, "one", ca, ["spiffe://cluster.local/ns/default/sa/web"])
    make_leaf(d, "two", ca, ["spiffe://cluster.local/ns/default/sa/web"])
    install(d, "one", d / "cert.pem", d / "key.pem")
    origin = HttpOrigin()
    try:
        port = free_port()
        p = petrel(simple_config(port, origin.port), proxy_spec=identity_spec(d))
        gen = stats(p)["config_generation"]
        install(d, "two", d / "cert.pem", d / "key.pem")
        wait_until(lambda: stats(p)["config_generation"] > gen, 10, what="a reload")
        assert "(files changed)" in p.stderr()
        assert http_request(port, "GET", "/")[0] == 200
        # a key that does not match the certificate: refused, the running snapshot stays
        gen = stats(p)["config_generation"]
        with open(d / "key.pem.new", "wb") as g, open(d / "one.key", "rb") as f:
            g.write(f.read())
        os.rename(d / "key.pem.new", d / "key.pem")
        wait_until(lambda: "refused" in p.stderr() and "spec.identity" in p.stderr(), 10,
                   what="the refused reload")
        assert stats(p)["config_generation"] == gen
        assert http_request(port, "GET", "/")[0] == 200
        p.stop_and_check()
    finally:
        origin.stop()


def test_missing_certificate_refuses_the_start(tmp_path):
    need_petrel()
    d = tmp_path / "certs"
    d.mkdir()
    make_ca(d, "roots")
    p = Petrel(tmp_path / "p", simple_config(free_port(), free_port()),
               proxy_spec=identity_spec(d))
    p.start(wait=False)
    rc = p.proc.wait(10)
    assert rc != 0
    assert "spec.identity: %s: cannot read the certificate chain" % (d / "cert.pem") in p.stderr()
