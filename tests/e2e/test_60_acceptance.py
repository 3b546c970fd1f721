"""tests/e2e/test_60_acceptance.py -- the Istio configs users bring, accepted as Istio does.

  - `petrel validate --lenient` on every YAML file under ../shared/acceptance/istio/ (Bookinfo,
    Istio's docs tasks, Istio's own test data), one test per file: exit 0 for every Istio
    resource file, with warnings for what Petrel parses but does not enforce yet. The
    authz-builder `*-out*.yaml` files are not Istio resources (Istio's golden Envoy RBAC filter
    output): `petrel validate` must refuse them with a clear error;
  - plain `petrel validate` on the same files refuses exactly the ones `petrel run` refuses (a
    security policy Petrel cannot enforce yet, a certificate file that is not here), with the
    same error lines as `run`;
  - `petrel run` refuses a config holding a security policy it cannot enforce yet
    (a CUSTOM AuthorizationPolicy), naming it at file:line:col, and so does a reload; a
    PeerAuthentication on a Proxy without a sidecar only warns and runs;
  - an unenforced field (a VirtualService `corsPolicy`) is logged as a warning by `petrel run`
    while traffic is served.
"""

import glob
import os
import signal
import subprocess
import time

import pytest

from netutil import free_port, http_request
from petrel import REPO, need_petrel, petrel_bin, proxy_doc, run_petrel, simple_config, to_yaml

ACCEPTANCE = os.path.join(REPO, "..", "shared", "acceptance", "istio")
FILES = sorted(glob.glob(os.path.join(ACCEPTANCE, "**", "*.yaml"), recursive=True))


def is_envoy_rbac_golden(path):
    """Istio's golden translations of an AuthorizationPolicy into Envoy RBAC filters."""
    return "authz-builder" in path and "-out" in os.path.basename(path)


# The corpus files `petrel run` refuses, and so plain `petrel validate`: JWT conditions in an
# AuthorizationPolicy, and Istio's test certificates under /etc/certs.
REFUSED = {
    "authz-builder/allow-full-rule-in.yaml",
    "testdata-config/gateway-all.yaml",
}


def _error_lines(stderr):
    """The file:line:col error lines of a refused load (not warnings, not the summary)."""
    return [ln for ln in stderr.splitlines()
            if not ln.startswith("warning: ") and not ln.startswith("petrel: ")
            and " warning " not in ln]


@pytest.mark.skipif(not FILES, reason="../shared/acceptance/istio is not beside the repo")
@pytest.mark.parametrize("path", FILES, ids=[os.path.relpath(f, ACCEPTANCE) for f in FILES])
def test_validate_acceptance_file(path):
    need_petrel()
    r = run_petrel(["validate", "--lenient", path])
    if is_envoy_rbac_golden(path):
        # Envoy's RBAC filter config (name, typedConfig), not a Kubernetes resource.
        assert r.returncode == 1, r.stderr
        assert "kind: required" in r.stderr
        assert "typedConfig: unknown field" in r.stderr
        return
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration valid" in r.stdout
    for line in r.stderr.splitlines():
        assert line.startswith("warning: "), line


@pytest.mark.skipif(not FILES, reason="../shared/acceptance/istio is not beside the repo")
@pytest.mark.parametrize("path", [f for f in FILES if not is_envoy_rbac_golden(f)],
                         ids=[os.path.relpath(f, ACCEPTANCE) for f in FILES
                              if not is_envoy_rbac_golden(f)])
def test_validate_refuses_what_run_refuses(path):
    need_petrel()
    v = run_petrel(["validate", path])
    if os.path.relpath(path, ACCEPTANCE) not in REFUSED:
        assert v.returncode == 0, v.stderr
        return
    assert v.returncode == 1, v.stdout + v.stderr
    errors = _error_lines(v.stderr)
    assert errors, v.stderr
    # `run` refuses it before opening any listener, with the same lines.
    r = _run_to_exit(path)
    assert r.returncode == 1, r.stderr
    assert "configuration refused" in r.stderr
    assert _error_lines(r.stderr) == errors, r.stderr


def _run_config(tmp_path, extra_docs, timeout=10):
    """Starts `petrel run` on a working config plus extra_docs; returns (process, config path).
    The caller stops it."""
    need_petrel()
    docs = [proxy_doc(free_port(), tmp_path / "access.log")]
    docs += simple_config(http_port=free_port(), upstream_port=free_port())
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(docs + list(extra_docs)))
    return path


def _security_doc(kind, spec, name="p", namespace="default"):
    return {"apiVersion": "security.istio.io/v1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _run_to_exit(path, timeout=10):
    try:
        return subprocess.run([petrel_bin(), "run", "-c", str(path)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("petrel run did not refuse the config (still running after %ss)" % timeout)


def _doc_line(path, kind):
    """1-based line of "kind: <kind>" in the written YAML."""
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip() == "kind: " + kind:
            return i
    raise LookupError(kind)


def test_run_refuses_authorization_policy(tmp_path):
    """An external authorizer (CUSTOM) is the part of AuthorizationPolicy Petrel cannot
    enforce (tests/e2e/test_63_authz.py has the rest)."""
    ap = _security_doc("AuthorizationPolicy", {"action": "CUSTOM", "provider": {"name": "ext"},
                                               "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]},
                       name="ext-authz", namespace="foo")
    path = _run_config(tmp_path, [ap])
    # validate --lenient: a warning only; plain validate: the error run gives, below.
    v = run_petrel(["validate", "--lenient", str(path)])
    assert v.returncode == 0, v.stderr
    assert "warning: " in v.stderr and "spec.action: action CUSTOM" in v.stderr
    strict = run_petrel(["validate", str(path)])
    assert strict.returncode == 1, strict.stderr
    r = _run_to_exit(path)
    assert r.returncode == 1, r.stderr
    lines = path.read_text().splitlines()
    at = next((i, ln.index("action")) for i, ln in enumerate(lines, 1) if ln.strip() == "action: CUSTOM")
    want = "%s:%d:%d: spec.action: action CUSTOM (an external authorizer) cannot be enforced " \
           "by Petrel: refusing to run AuthorizationPolicy foo/ext-authz open" \
           % (path, at[0], at[1] + 1)
    assert want in r.stderr, r.stderr
    assert want in strict.stderr, strict.stderr
    assert "configuration refused" in r.stderr


def test_peer_authentication_is_enforced_not_refused(tmp_path, petrel, origin):
    # Enforced on the sidecar's inbound now (tests/e2e/test_65_peer_auth.py): a Proxy without
    # spec.sidecar has nothing it applies to, so it warns and runs.
    strict = _security_doc("PeerAuthentication", {"mtls": {"mode": "STRICT"}})
    docs = simple_config(http_port=free_port(), upstream_port=origin.port) + [strict]
    p = petrel(docs)
    status, _, _ = http_request(p.port, "GET", "/x", host_header="web.local")
    assert status == 200
    assert "PeerAuthentication applies to a sidecar's inbound" in p.stderr()


def test_unenforced_field_warned_by_run_while_serving(petrel, origin):
    docs = simple_config(http_port=free_port(), upstream_port=origin.port,
                         http_route={"corsPolicy": {"allowOrigins": [{"exact": "a.com"}]}})
    p = petrel(docs)
    status, _, _ = http_request(p.port, "GET", "/x", host_header="web.local")
    assert status == 200
    err = p.stderr()
    assert "spec.http[0].corsPolicy: not enforced by Petrel yet: ignored" in err, err


def test_reload_refuses_authorization_policy(petrel, origin):
    docs = simple_config(http_port=free_port(), upstream_port=origin.port)
    p = petrel(docs)
    ap = _security_doc("AuthorizationPolicy", {"action": "CUSTOM", "provider": {"name": "ext"}},
                       name="ext-authz")
    p.write_config(docs + [ap])
    p.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "refusing to run" not in p.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "cannot be enforced by Petrel: refusing to run AuthorizationPolicy " \
           "default/ext-authz open" in p.stderr(), p.stderr()
    # The running config stays in force.
    status, _, _ = http_request(p.port, "GET", "/x", host_header="web.local")
    assert status == 200
