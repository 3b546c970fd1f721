"""tests/e2e/test_82_k8s_manifests.py -- docker/kubernetes/ and `petrel inject` output, checked
offline against the Kubernetes and Istio API schemas.

tests/e2e/k8s/validate.mjs runs each object through kubernetes-models /
@kubernetes-models/istio (pinned by tests/e2e/k8s/package-lock.json; `make e2e` installs them,
or `make tests/e2e/k8s/node_modules`) and then a strict check of field names, which those
packages do not make. Checked here:

  - every object of every manifest in docker/kubernetes/, and every YAML file in their
    ConfigMaps (the Istio kinds by schema, the whole directory with `petrel validate`);
  - docker/kubernetes/app.injected.yaml is what `petrel inject` makes of app.yaml today;
  - the output of `petrel inject` for every workload kind, native and --classic;
  - the checker itself: an unknown field and a wrong type are reported.
"""

import glob
import json
import os
import shutil
import subprocess

import pytest
import yaml

import certs
from petrel import REPO, need_petrel, petrel_bin

HERE = os.path.dirname(os.path.abspath(__file__))
K8S = os.path.join(HERE, "k8s")
MANIFESTS = sorted(glob.glob(os.path.join(REPO, "docker", "kubernetes", "*.yaml")))
IDENTITY_DIR = "/etc/petrel/identity/"


def schema_errors(named_objects):
    """{name: [errors]} from validate.mjs for [(name, object)]."""
    if not os.path.isdir(os.path.join(K8S, "node_modules")) or shutil.which("node") is None:
        pytest.fail("tests/e2e/k8s/node_modules missing: run `make tests/e2e/k8s/node_modules`")
    data = json.dumps([{"name": n, "object": o} for n, o in named_objects])
    r = subprocess.run(["node", os.path.join(K8S, "validate.mjs")], input=data,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return {res["name"]: res["errors"] for res in json.loads(r.stdout)}


def objects_of(text, where):
    """(name, object) for each document; a List's items one by one."""
    out = []
    for i, doc in enumerate(yaml.safe_load_all(text)):
        if doc is None:
            continue
        if doc.get("kind") == "List":
            out += [("%s[%d].items[%d]" % (where, i, k), item)
                    for k, item in enumerate(doc["items"])]
        else:
            out.append(("%s[%d] %s %s" % (where, i, doc.get("kind"),
                                          doc.get("metadata", {}).get("name")), doc))
    return out


def assert_valid(named_objects):
    errors = schema_errors(named_objects)
    bad = {n: e for n, e in errors.items() if e}
    assert not bad, json.dumps(bad, indent=1)
    assert len(errors) == len(named_objects)


def test_the_checker_reports_unknown_fields_and_wrong_types():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"any": "x"}},
           "spec": {"containers": [{"name": "a", "imagePullPolicy": "Always",
                                    "readinessProbe": {"httpGet": {"port": 1, "pth": "/"}}}]}}
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "v"}, "spec": {"hosts": ["a"], "http": [{"route": [
              {"destination": {"host": "a", "prot": {"number": 80}}}]}]}}
    typed = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
             "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": 7}]}}}}
    errors = schema_errors([("pod", pod), ("vs", vs), ("typed", typed),
                            ("proxy", {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy"})])
    assert errors["pod"] == ["/spec/containers/0/readinessProbe/httpGet/pth: unknown field"]
    assert errors["vs"] == ["/spec/http/0/route/0/destination/prot: unknown field"]
    assert len(errors["typed"]) == 1 and "must be string" in errors["typed"][0]
    assert errors["proxy"] == ["apiVersion petrel.io/v1alpha1: no schema here"]


@pytest.mark.parametrize("path", MANIFESTS, ids=os.path.basename)
def test_manifest_objects_match_the_schemas(path):
    with open(path) as f:
        named = objects_of(f.read(), os.path.basename(path))
    assert named
    assert_valid(named)


@pytest.mark.parametrize("path", [p for p in MANIFESTS if "injected" not in p],
                         ids=os.path.basename)
def test_configmap_files_are_valid_petrel_config(path, tmp_path):
    """The YAML files of each ConfigMap: the Istio kinds by schema, then the whole directory
    by `petrel validate`, with a real certificate where the Secret would be mounted."""
    need_petrel()
    with open(path) as f:
        maps = [d for d in yaml.safe_load_all(f) if d and d["kind"] == "ConfigMap"]
    ca = certs.make_ca(str(tmp_path), "root-cert")
    chain, key = certs.make_leaf(str(tmp_path), "leaf", ca,
                                 ["spiffe://cluster.local/ns/demo/sa/x"])
    for cm in maps:
        d = tmp_path / cm["metadata"]["name"]
        d.mkdir()
        named = []
        for fname, text in cm["data"].items():
            text = (text.replace(IDENTITY_DIR + "cert-chain.pem", chain)
                    .replace(IDENTITY_DIR + "key.pem", key)
                    .replace(IDENTITY_DIR + "root-cert.pem", str(tmp_path / "root-cert.crt")))
            (d / fname).write_text(text)
            named += [(n, o) for n, o in objects_of(text, fname)
                      if not o["apiVersion"].startswith("petrel.io/")]
        assert_valid(named)
        r = subprocess.run([petrel_bin(), "validate", str(d)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "warning" not in r.stderr, r.stderr


def test_injected_example_is_what_inject_makes_today():
    need_petrel()
    src = os.path.join(REPO, "docker", "kubernetes", "app.yaml")
    r = subprocess.run([petrel_bin(), "inject", "-f", src], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(REPO, "docker", "kubernetes", "app.injected.yaml")) as f:
        assert f.read() == r.stdout, "run: petrel inject -f %s > app.injected.yaml" % src


@pytest.mark.parametrize("mode", [[], ["--classic"]], ids=["native", "classic"])
def test_inject_output_matches_the_schemas(mode, tmp_path):
    need_petrel()
    from test_81_inject import workloads
    docs = workloads()
    docs[0]["metadata"]["annotations"] = {
        "traffic.sidecar.istio.io/excludeOutboundPorts": "5432",
        "sidecar.istio.io/proxyCPULimit": "2", "sidecar.istio.io/proxyMemoryLimit": "1Gi"}
    docs[1]["spec"]["template"]["spec"]["containers"][0].update(
        readinessProbe={"httpGet": {"path": "/ready", "port": 8080,
                                    "httpHeaders": [{"name": "x", "value": "y"}]}},
        livenessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 3})
    docs.append({"apiVersion": "v1", "kind": "List", "items": [docs[1]]})
    src = tmp_path / "in.yaml"
    src.write_text(yaml.safe_dump_all(docs))
    r = subprocess.run([petrel_bin(), "inject", "-f", str(src), *mode], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    named = objects_of(r.stdout, "inject")
    assert len(named) == len(docs)
    assert_valid(named)
