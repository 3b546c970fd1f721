"""tests/e2e/test_81_inject.py -- `petrel inject` on files and stdin, as a user runs it.

Every workload kind (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, and
those in a List) gets the capture init container and the sidecar (native by default, a regular
container with --classic); other documents, `sidecar.istio.io/inject: "false"` workloads and
hostNetwork pods (with a note on stderr) come out as they went in; the sidecar's
PETREL_WORKLOAD_NAME is the injected object's own name (the Deployment's, the CronJob's, a bare
Pod's), never one per pod; a second run changes nothing; bad input exits 1 with file:line:col and writes nothing. The output is read back with
PyYAML, so what is checked is what kubectl would read.
"""

import subprocess

import pytest
import yaml

from petrel import petrel_bin, need_petrel

CONTAINERS = [{"name": "app", "image": "example/app:1", "ports": [{"containerPort": 8080}]}]
POD_SPEC = {"containers": CONTAINERS}
TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}


def workloads():
    sel = {"matchLabels": {"app": "x"}}
    return [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod"}, "spec": POD_SPEC},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deploy"},
         "spec": {"selector": sel, "template": TEMPLATE}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "sts"},
         "spec": {"selector": sel, "serviceName": "x", "template": TEMPLATE}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
         "spec": {"selector": sel, "template": TEMPLATE}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
         "spec": {"selector": sel, "template": TEMPLATE}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "job"},
         "spec": {"template": {"spec": dict(POD_SPEC, restartPolicy="Never")}}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cron"},
         "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
             "spec": dict(POD_SPEC, restartPolicy="OnFailure")}}}}},
    ]


def pod_spec(obj):
    kind = obj["kind"]
    if kind == "Pod":
        return obj["metadata"], obj["spec"]
    if kind == "CronJob":
        t = obj["spec"]["jobTemplate"]["spec"]["template"]
    else:
        t = obj["spec"]["template"]
    return t["metadata"], t["spec"]


def inject(tmp_path, docs, *args, text=None):
    need_petrel()
    src = tmp_path / "in.yaml"
    src.write_text(text if text is not None else yaml.safe_dump_all(docs, sort_keys=False))
    return subprocess.run([petrel_bin(), "inject", "-f", str(src), *args], capture_output=True,
                          text=True, timeout=30)


def test_every_workload_kind_gets_a_native_sidecar(tmp_path):
    r = inject(tmp_path, workloads())
    assert r.returncode == 0, r.stderr
    out = list(yaml.safe_load_all(r.stdout))
    assert [o["kind"] for o in out] == [w["kind"] for w in workloads()]
    for obj in out:
        md, spec = pod_spec(obj)
        names = [c["name"] for c in spec["initContainers"]]
        assert names == ["petrel-init", "petrel-proxy"], obj["kind"]
        init, proxy = spec["initContainers"]
        assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
        assert init["securityContext"]["runAsUser"] == 0
        assert init["command"] == ["/usr/local/bin/petrel-iptables.sh"]
        assert init["args"][:8] == ["-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337"]
        assert proxy["restartPolicy"] == "Always"
        assert proxy["startupProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
        assert proxy["securityContext"]["runAsUser"] == 1337
        assert [c["name"] for c in spec["containers"]] == ["app"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert set(volumes) == {"petrel-mesh", "petrel-identity", "petrel-pod"}
        # Who the workload is: the Downward API as a volume (not the pod's own name: that is
        # one per pod), the service account, and the workload's name as env.
        assert volumes["petrel-pod"]["downwardAPI"]["items"] == [
            {"path": f, "fieldRef": {"fieldPath": "metadata." + f}}
            for f in ("labels", "namespace")]
        mounts = {m["name"]: m for m in proxy["volumeMounts"]}
        assert mounts["petrel-pod"] == {"name": "petrel-pod", "mountPath": "/etc/petrel/pod",
                                        "readOnly": True}
        env = {e["name"]: e for e in proxy["env"]}
        assert env["PETREL_POD_INFO"]["value"] == "/etc/petrel/pod"
        assert env["PETREL_SERVICE_ACCOUNT"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "spec.serviceAccountName"}}
        assert env["PETREL_WORKLOAD_NAME"] == {"name": "PETREL_WORKLOAD_NAME",
                                               "value": obj["metadata"]["name"]}, obj["kind"]
        assert md["annotations"]["petrel.io/inject-status"] == "native"


def test_classic_mode_puts_the_sidecar_first_with_a_wait_hook(tmp_path):
    r = inject(tmp_path, workloads()[1:2], "--classic", "--image", "reg.example/petrel:9")
    assert r.returncode == 0, r.stderr
    _, spec = pod_spec(yaml.safe_load(r.stdout))
    assert [c["name"] for c in spec["initContainers"]] == ["petrel-init"]
    proxy = spec["containers"][0]
    assert proxy["name"] == "petrel-proxy" and "restartPolicy" not in proxy
    assert proxy["image"] == "reg.example/petrel:9"
    assert proxy["lifecycle"]["postStart"]["exec"]["command"] == ["petrel", "wait"]
    assert spec["containers"][1]["name"] == "app"


def test_list_items_skips_and_pass_through(tmp_path):
    skipped = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "off", "annotations": {"sidecar.istio.io/inject": "false"}},
               "spec": POD_SPEC}
    host = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "host"},
            "spec": dict(POD_SPEC, hostNetwork=True)}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    lst = {"apiVersion": "v1", "kind": "List", "items": [workloads()[1], skipped]}
    r = inject(tmp_path, [lst, host, cm])
    assert r.returncode == 0, r.stderr
    out_list, out_host, out_cm = yaml.safe_load_all(r.stdout)
    assert pod_spec(out_list["items"][0])[1]["initContainers"][1]["name"] == "petrel-proxy"
    assert out_list["items"][1] == skipped
    assert out_host == host and out_cm == cm
    assert "in.yaml:" in r.stderr and "Pod host: not injected: hostNetwork" in r.stderr


def test_injecting_twice_equals_injecting_once(tmp_path):
    once = inject(tmp_path, workloads())
    assert once.returncode == 0
    twice = inject(tmp_path, None, text=once.stdout)
    assert twice.returncode == 0 and twice.stdout == once.stdout
    for obj in yaml.safe_load_all(twice.stdout):
        proxy = pod_spec(obj)[1]["initContainers"][1]
        assert [e["value"] for e in proxy["env"] if e["name"] == "PETREL_WORKLOAD_NAME"] == [
            obj["metadata"]["name"]]


def test_a_pod_without_a_name_gets_no_workload_name(tmp_path):
    """A generateName pod's name is not known before it exists: the sidecar gets no workload
    name (a Proxy spec.workload.name can give one) rather than a made-up one."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "worker-"},
           "spec": POD_SPEC}
    r = inject(tmp_path, [pod])
    assert r.returncode == 0, r.stderr
    proxy = pod_spec(yaml.safe_load(r.stdout))[1]["initContainers"][1]
    names = [e["name"] for e in proxy["env"]]
    assert "PETREL_POD_INFO" in names and "PETREL_WORKLOAD_NAME" not in names


def test_stdin_and_annotations(tmp_path):
    need_petrel()
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": {
               "traffic.sidecar.istio.io/excludeOutboundIPRanges": "169.254.169.254/32",
               "traffic.sidecar.istio.io/includeInboundPorts": "8080",
               "sidecar.istio.io/proxyMemory": "64Mi"}},
           "spec": {"serviceAccountName": "reviews", "containers": [dict(
               CONTAINERS[0], readinessProbe={"httpGet": {"path": "/ready", "port": 8080}})]}}
    r = subprocess.run([petrel_bin(), "inject"], input=yaml.safe_dump(pod), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    spec = yaml.safe_load(r.stdout)["spec"]
    init, proxy = spec["initContainers"]
    args = init["args"]
    assert args[args.index("-x") + 1] == "169.254.169.254/32"
    assert args[args.index("-b") + 1] == "8080"
    assert args[args.index("-d") + 1] == "15090,15021,15020"
    assert proxy["resources"]["requests"]["memory"] == "64Mi"
    assert spec["containers"][0]["readinessProbe"] == {
        "httpGet": {"path": "/app-health/app/readyz", "port": 15021, "scheme": "HTTP"}}
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["PETREL_WORKLOAD_NAME"] == "p"  # a bare Pod is its own workload
    assert yaml.safe_load(env["PETREL_APP_PROBERS"]) == {
        "/app-health/app/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
                                   "timeoutSeconds": 1}}
    secret = [v for v in spec["volumes"] if v["name"] == "petrel-identity"][0]
    assert secret["secret"]["secretName"] == "petrel-identity-reviews"


@pytest.mark.parametrize("text,message", [
    ("kind: Pod\nmetadata: {name: p\n", "in.yaml:3:1: not YAML"),
    ("kind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    metadata:\n"
     "      annotations:\n        traffic.sidecar.istio.io/includeOutboundIPRanges: 10.0.0.0/33\n"
     "    spec: {containers: [{name: a}]}\n",
     "in.yaml:7:59: spec.template.metadata.annotations.traffic.sidecar.istio.io/"
     "includeOutboundIPRanges: \"10.0.0.0/33\" is not a comma-separated list of IPv4 CIDR"),
    ("kind: Job\nmetadata: {name: j}\nspec: {}\n",
     "in.yaml:1:1: spec.template.spec: Job j: expected a pod template"),
])
def test_bad_input_exits_1_and_writes_nothing(tmp_path, text, message):
    r = inject(tmp_path, None, text=text)
    assert r.returncode == 1
    assert r.stdout == ""
    assert message in r.stderr, r.stderr


def test_usage_errors_exit_2(tmp_path):
    need_petrel()
    r = subprocess.run([petrel_bin(), "inject", "--frobnicate"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "unexpected argument \"--frobnicate\"" in r.stderr
    r = subprocess.run([petrel_bin(), "inject", "-f", str(tmp_path / "missing.yaml")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "missing.yaml" in r.stderr
