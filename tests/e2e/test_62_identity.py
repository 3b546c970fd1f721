"""tests/e2e/test_62_identity.py -- the workload identity's certificate files (Proxy
spec.identity), watched like the config: a rotated certificate makes a new snapshot (new
handshakes use it), a broken one is refused and the running identity stays, and a missing one
refuses the start with the file named. A file first named by a reload is watched from then
on; a certificate mounted the way Kubernetes mounts a Secret rotates with the kubelet's ..data
symlink swap, and new handshakes get the new one.

Certificates are made with tests/lib/certs.py into the test's directory.
"""

import os
import socket
import ssl

from cryptography import x509
from cryptography.x509.oid import NameOID

from certs import make_ca, make_leaf
from netutil import free_port, http_request, wait_until
from petrel import ISTIO, Petrel, need_petrel, service_entry_doc, simple_config, stats
from upstream import HttpOrigin


def install(d, name, dest_crt, dest_key):
    """Puts <name>'s files in place the way rotation tools do: write aside, then rename."""
    for src, dst in ((d / (name + ".crt"), dest_crt), (d / (name + ".key"), dest_key)):
        tmp = str(dst) + ".new"
        with open(src, "rb") as f, open(tmp, "wb") as g:
            g.write(f.read())
        os.rename(tmp, dst)


def watched_inodes(pid):
    """The inode numbers a process watches with inotify (from /proc/<pid>/fdinfo)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fdinfo" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    if line.startswith("inotify wd:"):
                        ino = line.split(" ino:")[1].split()[0]
                        inodes.add(int(ino, 16))
        except FileNotFoundError:
            pass
    return inodes


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


def test_certificate_first_named_by_a_reload_is_watched(tmp_path, petrel):
    """Started without an identity, then given one by a config reload: from then on its files
    are watched (a rotation reloads with no SIGHUP); after a reload moves the identity to
    another directory, the old one is no longer watched."""
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        d.mkdir()
        ca = make_ca(d, "roots")
        make_leaf(d, "one", ca, ["spiffe://cluster.local/ns/default/sa/web"])
        make_leaf(d, "two", ca, ["spiffe://cluster.local/ns/default/sa/web"])
        install(d, "one", d / "cert.pem", d / "key.pem")
    origin = HttpOrigin()
    try:
        port = free_port()
        p = petrel(simple_config(port, origin.port))
        gen = stats(p)["config_generation"]
        p.proxy_spec = identity_spec(old)
        p.write_config()
        wait_until(lambda: stats(p)["config_generation"] == gen + 1, 10, what="the reload")
        assert os.stat(old).st_ino in watched_inodes(p.pid)
        install(old, "two", old / "cert.pem", old / "key.pem")
        wait_until(lambda: stats(p)["config_generation"] == gen + 2, 10,
                   what="a reload for the rotated certificate")
        p.proxy_spec = identity_spec(new)
        p.write_config()
        wait_until(lambda: stats(p)["config_generation"] == gen + 3, 10, what="the reload")
        install(new, "two", new / "cert.pem", new / "key.pem")
        wait_until(lambda: stats(p)["config_generation"] == gen + 4, 10,
                   what="a reload for the new directory's rotated certificate")
        # The old directory is no longer watched: the kernel's inotify table says so.
        assert os.stat(new).st_ino in watched_inodes(p.pid)
        assert os.stat(old).st_ino not in watched_inodes(p.pid)
        assert http_request(port, "GET", "/")[0] == 200
        p.stop_and_check()
    finally:
        origin.stop()


def secret_mount(d, name, stamp):
    """Lays <name>'s files out as Kubernetes mounts a Secret: ..<stamp>/{tls.crt,tls.key},
    ..data -> ..<stamp>, tls.crt -> ..data/tls.crt. Called again with a new stamp it rotates
    the way the kubelet does: a new directory, then an atomic rename of the ..data link."""
    stamped = d / ("..%s" % stamp)
    stamped.mkdir()
    for src, dst in ((name + ".crt", "tls.crt"), (name + ".key", "tls.key")):
        (stamped / dst).write_bytes((d.parent / "certs" / src).read_bytes())
    os.symlink(stamped.name, d / "..data_tmp")
    os.rename(d / "..data_tmp", d / "..data")
    for f in ("tls.crt", "tls.key"):
        if not os.path.islink(d / f):
            os.symlink(os.path.join("..data", f), d / f)


def served_cn(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="web.example") as s:
            der = s.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)[0].value


def test_secret_mount_symlink_swap_rotates_the_served_certificate(tmp_path, petrel):
    """A Gateway certificate mounted as Kubernetes mounts a Secret (symlinks through ..data):
    the kubelet's swap of ..data is a reload, and new handshakes get the new certificate."""
    certs, mount = tmp_path / "certs", tmp_path / "mount"
    certs.mkdir()
    mount.mkdir()
    ca = make_ca(certs, "roots")
    make_leaf(certs, "one", ca, ["spiffe://cluster.local/ns/default/sa/web"])
    make_leaf(certs, "two", ca, ["spiffe://cluster.local/ns/default/sa/web"])
    secret_mount(mount, "one", "2026_11_23_00_00_00.1")
    origin = HttpOrigin()
    try:
        port = free_port()
        gw = {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": "edge"},
              "spec": {"servers": [{"port": {"number": port, "name": "https", "protocol": "HTTPS"},
                                    "hosts": ["*"],
                                    "tls": {"mode": "SIMPLE",
                                            "serverCertificate": str(mount / "tls.crt"),
                                            "privateKey": str(mount / "tls.key")}}]}}
        vs = {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "web"},
              "spec": {"hosts": ["*"], "gateways": ["edge"],
                       "http": [{"route": [{"destination": {"host": "web.local"}}]}]}}
        p = petrel([gw, vs, service_entry_doc("web.local", origin.port, name="web")])
        assert served_cn(port) == "one"
        gen = stats(p)["config_generation"]
        secret_mount(mount, "two", "2026_11_23_00_05_00.2")
        wait_until(lambda: stats(p)["config_generation"] > gen, 10, what="the reload")
        assert served_cn(port) == "two"
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
