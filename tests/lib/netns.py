"""tests/lib/netns.py -- pods as network namespaces, for the sidecar tests and the bench.

A Mesh is a hub namespace holding a bridge, and pods: each a namespace with eth0 (a veth whose
peer is on the bridge), an address in one /24, loopback up, and a route for the service VIPs
(10.96.0.0/16) through eth0 (a captured connection never uses it; it only has to exist). A pod
can get traffic capture (docker/petrel-iptables.sh) and run processes, as root or as another
uid (setpriv: the sidecar runs as 1337, which the capture rules let through).

    mesh = Mesh("pt")                  # namespaces pthub<pid>, pt<pod><pid>
    try:
        mesh.add_pod("a", "10.77.0.10")
        mesh.capture("a")              # petrel-iptables.sh with its defaults, or options
        p = mesh.popen("a", [petrel, "run", "-c", dir], uid=1337, log_dir=dir, name="petrel")
        mesh.run("a", "curl", ...)     # subprocess.run in the pod, output captured, bounded
    finally:
        mesh.close()                   # processes, rules, namespaces; never raises

Names carry the pid, so runs side by side do not meet. Needs root, `ip` and `iptables`
(`setpriv` for uid); usable() says whether this machine has them.
"""

import json
import os
import shutil
import signal
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IPTABLES_SCRIPT = os.path.join(REPO, "docker", "petrel-iptables.sh")
SERVICE_VIPS = "10.96.0.0/16"


def usable():
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces and iptables)"
    for tool in ("ip", "iptables", "setpriv"):
        if shutil.which(tool) is None:
            return "needs %s" % tool
    return None


def sh(*args, check=True, timeout=30):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=timeout)


class Mesh:
    def __init__(self, tag):
        self.tag = tag
        self.suffix = "%d" % os.getpid()
        self.hub = tag + "hub" + self.suffix
        self.pods = {}  # name -> address
        self.captured = []
        self.procs = []
        self._hub_made = False

    def ns(self, pod):
        return self.tag + pod + self.suffix

    def _make_hub(self):
        sh("ip", "netns", "add", self.hub)
        self._hub_made = True
        sh("ip", "netns", "exec", self.hub, "ip", "link", "add", "br0", "type", "bridge")
        sh("ip", "netns", "exec", self.hub, "ip", "link", "set", "br0", "up")

    def add_pod(self, pod, ip):
        """A namespace with eth0 at ip/24 on the hub's bridge."""
        if not self._hub_made:
            self._make_hub()
        ns = self.ns(pod)
        veth = "v" + self.tag + pod + self.suffix
        assert len(veth) <= 15, veth  # IFNAMSIZ
        sh("ip", "netns", "add", ns)
        self.pods[pod] = ip
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", veth, "netns", self.hub)
        sh("ip", "netns", "exec", self.hub, "ip", "link", "set", veth, "master", "br0", "up")
        self.run(pod, "ip", "addr", "add", ip + "/24", "dev", "eth0")
        self.run(pod, "ip", "link", "set", "eth0", "up")
        self.run(pod, "ip", "link", "set", "lo", "up")
        self.run(pod, "ip", "route", "add", SERVICE_VIPS, "dev", "eth0")

    def capture(self, pod, *options):
        """Applies docker/petrel-iptables.sh in the pod (removed again by close())."""
        self.captured.append(pod)
        self.run(pod, "sh", IPTABLES_SCRIPT, *options)

    def run(self, pod, *args, check=True, timeout=30):
        return sh("ip", "netns", "exec", self.ns(pod), *args, check=check, timeout=timeout)

    def command(self, pod, argv, uid=None):
        """argv as run in the pod (as uid when given). `ip netns exec` and setpriv exec, so
        the process started is argv's own (its pid is the program's)."""
        cmd = ["ip", "netns", "exec", self.ns(pod)]
        if uid is not None:
            cmd += ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"]
        return cmd + list(argv)

    def popen(self, pod, argv, uid=None, log_dir=None, name="proc"):
        """Starts argv in the pod; stdout and stderr go to log_dir/<name>.out and .err (or
        nowhere). Stopped by stop_processes() / close()."""
        if log_dir:
            out = open(os.path.join(log_dir, name + ".out"), "wb")
            err = open(os.path.join(log_dir, name + ".err"), "wb")
        else:
            out = err = open(os.devnull, "wb")
        try:
            p = subprocess.Popen(self.command(pod, argv, uid), stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err)
        finally:
            out.close()
            err.close()
        self.procs.append(p)
        return p

    def stop_processes(self, timeout=10):
        """SIGTERM to every process started here, SIGKILL to those still there after timeout."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def close(self):
        """Processes, capture rules, namespaces (and with them the veths): all gone, whatever
        was made before a failure. Never raises."""
        steps = [self.stop_processes]
        steps += [lambda pod=pod: sh("ip", "netns", "exec", self.ns(pod), "sh", IPTABLES_SCRIPT,
                                     "clean", check=False) for pod in self.captured]
        steps += [lambda pod=pod: sh("ip", "netns", "del", self.ns(pod), check=False)
                  for pod in self.pods]
        if self._hub_made:
            steps.append(lambda: sh("ip", "netns", "del", self.hub, check=False))
        self.captured, self.pods, self._hub_made = [], {}, False
        for step in steps:
            try:
                step()
            except (OSError, subprocess.SubprocessError):
                pass  # the next step still runs: a namespace left behind is worse


class MeshPod:
    """A pod of a Mesh as the sidecar tests use it: its working directory (config/ beside the
    logs of the processes it starts), a JSON access log, and its sidecar's admin API on 15000
    reached from inside the pod."""

    def __init__(self, mesh, name, workdir):
        self.mesh = mesh
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(os.path.join(self.dir, "config"))
        os.chmod(self.dir, 0o777)
        self.log = os.path.join(self.dir, "access.log")
        self.petrel = None

    def start(self, args, uid=None, name="proc"):
        return self.mesh.popen(self.name, args, uid=uid, log_dir=self.dir, name=name)

    def access_log(self):
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def admin(self, path):
        return self.mesh.run(self.name, "curl", "-s", "--max-time", "5",
                             "http://127.0.0.1:15000" + path, check=False).stdout

    def stderr(self):
        with open(os.path.join(self.dir, "petrel.err"), errors="replace") as f:
            return f.read()
