"""The pod's Downward API (xds/pod_info.c), as `petrel inject` hands it to the sidecar: a
directory written the way the kubelet writes a downwardAPI volume (files `labels` and
`namespace` as symlinks through `..data` to a timestamped directory) named by PETREL_POD_INFO,
the service account in PETREL_SERVICE_ACCOUNT and the workload's (Deployment's) name in
PETREL_WORKLOAD_NAME. The real binary must show that workload in /server_info (the workload's
name, not a pod's, even when a stray `name` file holds the pod's) and in the metrics'
source_workload, scope an AuthorizationPolicy `selector` by those labels, follow a label change
live (the kubelet's `..data` swap), refuse a malformed labels file with file:line:col and keep
the config in force, and let an explicit Proxy spec.workload field win over the pod."""

import json
import os
import shutil

from netutil import free_port, http_request, wait_until
from petrel import run_petrel, simple_config, stats

SEC = "security.istio.io/v1"

_swaps = [0]


def write_pod_info(root, labels, namespace="shop"):
    """Writes (or atomically replaces) the pod-info directory as the kubelet's atomic writer
    does: a new ..<timestamp> directory, a ..data_tmp symlink to it renamed over ..data, the
    user-visible files symlinks through ..data, then the old directory removed."""
    os.makedirs(root, exist_ok=True)
    _swaps[0] += 1
    ts = "..2026_12_07_04_00_%02d.%d" % (_swaps[0], os.getpid())
    os.mkdir(os.path.join(root, ts))
    for fname, text in (("labels", labels), ("namespace", namespace)):
        with open(os.path.join(root, ts, fname), "w") as f:
            f.write(text)
    data = os.path.join(root, "..data")
    old = os.readlink(data) if os.path.islink(data) else None
    os.symlink(ts, os.path.join(root, "..data_tmp"))
    os.rename(os.path.join(root, "..data_tmp"), data)
    for fname in ("labels", "namespace"):
        if not os.path.islink(os.path.join(root, fname)):
            os.symlink(os.path.join("..data", fname), os.path.join(root, fname))
    if old is not None:
        shutil.rmtree(os.path.join(root, old))


def pod_env(root, service_account="web-sa", workload_name="web"):
    return dict(os.environ, PETREL_POD_INFO=str(root), PETREL_SERVICE_ACCOUNT=service_account,
                PETREL_WORKLOAD_NAME=workload_name)


def deny_web(ns="shop"):
    """DENY everything, for workloads labelled app=web of namespace ns."""
    return {"apiVersion": SEC, "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny-web", "namespace": ns},
            "spec": {"action": "DENY", "rules": [{}], "selector": {"matchLabels": {"app": "web"}}}}


def node(p):
    status, body = p.admin_get("/server_info")
    assert status == 200
    return json.loads(body)["node"]


def test_the_pod_is_the_workload_and_a_label_change_applies_live(petrel, origin, tmp_path):
    pod = tmp_path / "pod"
    write_pod_info(pod, 'app="web"\npod-template-hash="5d8f7"\nversion="v\\"1\\""')
    (pod / "name").write_text("web-5d8f7-x2k9p")  # the pod's own name: not the workload's
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + [deny_web()],
               env=pod_env(pod))
    n = node(p)
    assert n["id"] == "router~127.0.0.1~web.shop~shop.svc.cluster.local"
    assert n["metadata"]["NAME"] == "web"
    assert n["metadata"]["NAMESPACE"] == "shop"
    assert n["metadata"]["SERVICE_ACCOUNT"] == "web-sa"
    assert n["metadata"]["LABELS"] == {"app": "web", "pod-template-hash": "5d8f7",
                                       "version": 'v"1"'}
    assert http_request(p.port)[0] == 403
    assert "does not apply to this workload" not in p.stderr()
    # Istio's metrics label the workload, not the pod (one series per workload, as Istio's
    # dashboards aggregate).
    status, body = p.admin_get("/stats/prometheus")
    assert status == 200
    requests = [ln for ln in body.decode().splitlines() if ln.startswith("istio_requests_total{")]
    assert requests and all('source_workload="web",' in ln for ln in requests), requests
    assert "web-5d8f7-x2k9p" not in body.decode()

    # The kubelet rewrites the labels: the policy no longer selects this workload.
    gen = stats(p)["config_generation"]
    write_pod_info(pod, 'app="api"\nversion="v2"')
    wait_until(lambda: stats(p)["config_generation"] > gen, timeout=10, what="a reload")
    assert node(p)["metadata"]["LABELS"] == {"app": "api", "version": "v2"}
    assert http_request(p.port)[0] == 200
    assert ('AuthorizationPolicy "deny-web" does not apply to this workload: selector app=web '
            "does not match its labels {app: api, version: v2}") in p.stderr()

    # A malformed labels file is refused with its place; the config in force keeps serving.
    gen = stats(p)["config_generation"]
    write_pod_info(pod, 'app="web"\nversion=v3')
    wait_until(lambda: stats(p)["config_reloads_refused"] >= 1, timeout=10, what="a refusal")
    assert "%s:2:9: expected a double-quoted value after '='" % (pod / "labels") in p.stderr()
    assert stats(p)["config_generation"] == gen
    assert http_request(p.port)[0] == 200

    # Fixed again: app=web is denied again.
    write_pod_info(pod, 'app="web"')
    wait_until(lambda: stats(p)["config_generation"] > gen, timeout=10, what="a reload")
    assert http_request(p.port)[0] == 403


def test_an_explicit_proxy_field_wins_over_the_pod(petrel, origin, tmp_path):
    pod = tmp_path / "pod"
    write_pod_info(pod, 'app="web"')
    # The Proxy names another namespace: the pod's policy is out of scope; the rest is the pod's.
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port) + [deny_web()],
               env=pod_env(pod), proxy_spec={"workload": {"namespace": "other"}})
    md = node(p)["metadata"]
    assert (md["NAME"], md["NAMESPACE"], md["SERVICE_ACCOUNT"], md["LABELS"]) == (
        "web", "other", "web-sa", {"app": "web"})
    assert http_request(p.port)[0] == 200
    # An explicit name wins over PETREL_WORKLOAD_NAME.
    p = petrel(simple_config(http_port=free_port(), upstream_port=origin.port),
               env=pod_env(pod), proxy_spec={"workload": {"name": "web-canary"}})
    assert node(p)["metadata"]["NAME"] == "web-canary"


def test_bad_pod_info_refuses_the_config(tmp_path):
    cfg = tmp_path / "mesh.yaml"
    cfg.write_text("apiVersion: petrel.io/v1alpha1\nkind: Proxy\nmetadata: {name: p}\n")
    pod = tmp_path / "pod"
    write_pod_info(pod, 'app="web"\n\n')
    r = run_petrel(["validate", str(cfg)], env=pod_env(pod))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "%s:2:1: empty line (one key=\"value\" per line)" % (pod / "labels") in r.stderr
    r = run_petrel(["validate", str(cfg)], env=pod_env(tmp_path / "missing"))
    assert r.returncode == 1
    assert ("%s: cannot read the pod-info directory (PETREL_POD_INFO): No such file or directory"
            % (tmp_path / "missing")) in r.stderr
    write_pod_info(pod, 'app="web"')
    r = run_petrel(["validate", str(cfg)], env=pod_env(pod, service_account=""))
    assert r.returncode == 1
    assert "PETREL_SERVICE_ACCOUNT: set but empty" in r.stderr
    r = run_petrel(["validate", str(cfg)], env=pod_env(pod, workload_name=""))
    assert r.returncode == 1
    assert ("PETREL_WORKLOAD_NAME: set but empty (the workload's metadata.name)"
            in r.stderr), r.stderr
    assert run_petrel(["validate", str(cfg)], env=pod_env(pod)).returncode == 0
