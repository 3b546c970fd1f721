"""tests/e2e/test_50_docker_image.py -- docker/Dockerfile, checked without a Docker engine.

The build stage is replayed in a temporary directory on exactly what its COPY lines bring from
the repository (Docker's rules: a directory's contents go to the destination, a pattern that
matches nothing copies nothing), running its RUN steps there, so a source directory the
Dockerfile forgets fails here. Then the runtime stage: every COPY source exists, the shared
libraries it installs are exactly those the built binary loads, it runs as UID 1337, and its
EXPOSE ports and HEALTHCHECK fit the image's own config, which the real binary serves here
(its ports swapped for free ones) while the HEALTHCHECK command runs against it. Debian
packages no Dockerfile linter, so the checks a linter would make that matter here are made
here: COPY sources exist, the user is not root.
"""

import fnmatch
import glob
import json
import os
import re
import shutil
import socket
import subprocess

import pytest

from netutil import http_request, wait_until
from petrel import REPO, gateway_ports, proxy_spec_of, with_free_ports

DOCKERFILE = os.path.join(REPO, "docker", "Dockerfile")
# Left out of the replay: it would empty the host's own apt lists.
APT_CLEANUP = " && rm -rf /var/lib/apt/lists/*"
# In every Debian image already: the Essential packages depend on it.
BASE_LIBRARIES = {"libc6"}
# Installed for the trust store of upstream TLS and for the capture script, not for a library.
RUNTIME_NOT_LIBRARIES = {"ca-certificates", "iptables"}
# Loaded with dlopen() when a config first needs TLS (tls/openssl.c), so not in ldd's list.
DLOPENED_LIBRARIES = {"libssl3"}


def stages():
    """{stage name or index: [(INSTRUCTION, arguments)]} of the Dockerfile, comments dropped,
    backslash continuations joined; each stage's list starts with ("FROM", image)."""
    out, name, line = {}, None, ""
    for raw in open(DOCKERFILE):
        raw = raw.rstrip("\n")
        if raw.lstrip().startswith("#"):
            continue
        if raw.endswith("\\"):
            line += raw[:-1]
            continue
        line, (word, _, args) = "", (line + raw).strip().partition(" ")
        if not word:
            continue
        if word.upper() == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else len(out)
            out[name] = []
        out[name].append((word.upper(), args.strip()))
    assert not line, "the Dockerfile ends inside a continued line"
    return out


def steps(stage, word):
    return [args for w, args in stage if w == word]


def copy_args(args):
    """(flags, sources, destination) of a COPY line's shell form."""
    words = args.split()
    flags = [w for w in words if w.startswith("--")]
    rest = [w for w in words if not w.startswith("--")]
    assert len(rest) >= 2, "COPY " + args
    return flags, rest[:-1], rest[-1]


def copy_from_repo(sources, dest, into):
    """Docker's COPY of repository paths to dest (a path inside the directory into)."""
    for src in sources:
        matches = sorted(glob.glob(os.path.join(REPO, src)))
        if not glob.has_magic(src):
            assert matches, "COPY source %s does not exist in the repository" % src
        for path in matches:
            target = dest
            if os.path.isfile(path) and (dest.endswith("/") or len(sources) > 1):
                target = os.path.join(dest, os.path.basename(path))
            target = os.path.join(into, target.lstrip("/"))
            if os.path.isdir(path):
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(path, target)


def makefile_source_dirs():
    """The top directories of the Makefile's LIB_SRCS wildcard."""
    text = open(os.path.join(REPO, "Makefile")).read()
    m = re.search(r"^LIB_SRCS\s*=.*\$\(wildcard ([^)]*)\)", text, re.M)
    assert m, "no LIB_SRCS wildcard in the Makefile"
    return sorted({pattern.split("/")[0] for pattern in m.group(1).split()})


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """The root of a file system where the build stage's steps ran; returns (root, workdir)."""
    root = str(tmp_path_factory.mktemp("image-build"))
    workdir = root
    # Docker's environment, not make's: no MAKEFLAGS from a `make test` around this test.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    for word, args in stages()["build"][1:]:
        if word == "WORKDIR":
            workdir = os.path.join(root, args.lstrip("/"))
            os.makedirs(workdir, exist_ok=True)
        elif word == "COPY":
            flags, sources, dest = copy_args(args)
            assert not flags, "COPY " + args
            copy_from_repo(sources, os.path.join(os.path.relpath(workdir, root), dest), root)
        elif word == "RUN":
            r = subprocess.run(["sh", "-c", args.replace(APT_CLEANUP, "")], cwd=workdir, env=env,
                               capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, "RUN %s\n%s%s" % (args, r.stdout[-4000:], r.stderr[-4000:])
        else:
            raise AssertionError("the replay does not know %s" % word)
    return root, workdir


def runtime():
    s = stages()
    assert list(s)[0] == "build" and len(s) == 2, "expected two stages, build and the runtime"
    return s[list(s)[1]]


def image_config():
    """(repository path of the image's config, its text): the file a runtime COPY puts in the
    directory the CMD runs on."""
    stage = runtime()
    cmd = json.loads(steps(stage, "CMD")[-1])
    config_dir = cmd[cmd.index("-c") + 1].rstrip("/")
    for args in steps(stage, "COPY"):
        flags, sources, dest = copy_args(args)
        if not flags and os.path.dirname(dest.rstrip("/")) == config_dir:
            assert len(sources) == 1, args
            path = os.path.join(REPO, sources[0])
            return path, open(path).read()
    raise AssertionError("no COPY into %s, the directory the CMD serves" % config_dir)


def listen_addresses():
    """{port: IPv4 address} of the listening TCP sockets in this network namespace."""
    out = {}
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # TCP_LISTEN
                addr, port = local.split(":")
                out[int(port, 16)] = socket.inet_ntoa(bytes.fromhex(addr)[::-1])
    return out


def image_ports(text):
    """{port: what} of every listener the config opens where a published port reaches it (the
    admin listener only when adminAddress is not loopback)."""
    spec = proxy_spec_of([text])
    ports = {}
    if not spec.get("adminAddress", "127.0.0.1").startswith("127."):
        ports[spec.get("adminPort", 15000)] = "admin"
    for field in ("prometheusPort", "healthPort"):
        if spec.get(field):
            ports[spec[field]] = field
    for port, protocol in gateway_ports([text]):
        ports[port] = protocol
    return ports


# -- the build stage --------------------------------------------------------------------------

def test_build_stage_copies_every_directory_the_makefile_compiles():
    sources = [s for args in steps(stages()["build"], "COPY") for s in copy_args(args)[1]]
    for d in makefile_source_dirs():
        assert any(fnmatch.fnmatch(d, s) for s in sources), \
            "docker/Dockerfile's build stage does not copy %s/, which the Makefile compiles" % d


def test_build_stage_builds_petrel_from_what_it_copies(replayed):
    root, workdir = replayed
    r = subprocess.run([os.path.join(workdir, "build", "petrel"), "--version"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("petrel "), r


# -- the runtime stage ------------------------------------------------------------------------

def test_runtime_stage_copies_exist(replayed):
    root, _ = replayed
    for args in steps(runtime(), "COPY"):
        flags, sources, _ = copy_args(args)
        for src in sources:
            if "--from=build" in flags:
                assert os.path.exists(os.path.join(root, src.lstrip("/"))), \
                    "the build stage made no %s" % src
            else:
                assert flags in ([], ["--chmod=0755"]) and os.path.exists(os.path.join(REPO, src)), \
                    args


def test_runtime_has_what_the_injected_init_container_runs():
    """petrel inject's petrel-init container runs the capture script from this image: the
    script must be where the injected manifest's command says, executable, with iptables."""
    manifest = open(os.path.join(REPO, "docker", "kubernetes", "app.injected.yaml")).read()
    (script,) = set(re.findall(r"^\s*- (/\S*petrel-iptables\.sh)$", manifest, re.M))
    copies = [copy_args(args) for args in steps(runtime(), "COPY")]
    assert any(dest == script and "--chmod=0755" in flags and sources == ["docker/petrel-iptables.sh"]
               for flags, sources, dest in copies), copies
    text = open(os.path.join(REPO, "docker", "install-deps.sh")).read()
    assert "iptables" in re.search(r'^RUNTIME="([^"]*)"', text, re.M).group(1).split()


def test_runtime_libraries_are_those_petrel_loads(replayed):
    _, workdir = replayed
    stage = runtime()
    assert any("install-deps.sh runtime" in args for args in steps(stage, "RUN"))
    text = open(os.path.join(REPO, "docker", "install-deps.sh")).read()
    installed = set(re.search(r'^RUNTIME="([^"]*)"', text, re.M).group(1).split())
    ldd = subprocess.run(["ldd", os.path.join(workdir, "build", "petrel")], capture_output=True,
                         text=True, timeout=10, check=True).stdout
    loaded = set()
    for lib in re.findall(r"=> (/\S+)", ldd):
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(lib)], capture_output=True,
                               text=True, timeout=30)
        if owner.returncode != 0:  # the merged /usr: dpkg knows the path as installed
            owner = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True, timeout=30)
        assert owner.returncode == 0, "no package owns %s" % lib
        loaded.add(owner.stdout.split(":")[0])
    assert (loaded | DLOPENED_LIBRARIES) - BASE_LIBRARIES == installed - RUNTIME_NOT_LIBRARIES, ldd


def test_runtime_runs_as_uid_1337():
    stage = runtime()
    assert steps(stage, "USER") == ["1337:1337"]
    run = " ".join(steps(stage, "RUN"))
    assert "useradd --system --uid 1337 --gid 1337" in run and "groupadd --system --gid 1337" in run


def test_image_config_binds_every_address_and_exposes_its_ports():
    path, text = image_config()
    assert proxy_spec_of([text]).get("bindAddress") == "0.0.0.0", path
    exposed = {int(p) for args in steps(runtime(), "EXPOSE") for p in args.split()}
    ports = image_ports(text)
    assert exposed == set(ports), "EXPOSE %s, the config opens %s" % (sorted(exposed), ports)


def test_image_config_serves_and_healthcheck_follows_readiness(petrel):
    _, text = image_config()
    ports = image_ports(text)
    health = next(p for p, what in ports.items() if what == "healthPort")
    admin = proxy_spec_of([text]).get("adminPort", 15000)
    text, free = with_free_ports(text, sorted(set(ports) | {admin}))
    p = petrel([text])
    gateway = next(free[port] for port, what in ports.items() if what == "HTTP")
    # Published ports reach what listens on every address; the admin API stays on loopback.
    listening = listen_addresses()
    for port in ports:
        assert listening.get(free[port]) == "0.0.0.0", (port, listening)
    assert listening.get(free[admin]) == "127.0.0.1", listening
    st, _, body = http_request(gateway, "GET", "/")
    assert st == 200 and body == b"hello from petrel\n"
    prometheus = next(free[port] for port, what in ports.items() if what == "prometheusPort")
    st, _, body = http_request(prometheus, "GET", "/stats/prometheus")
    assert st == 200 and b"petrel_" in body

    (check,) = steps(runtime(), "HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3:])
    probe = re.compile(r"/dev/tcp/127\.0\.0\.1/%d\b" % health)
    assert probe.search(command[-1]), "the HEALTHCHECK does not ask port %d: %s" % (health, command)
    command[-1] = probe.sub("/dev/tcp/127.0.0.1/%d" % free[health], command[-1])

    def healthcheck():
        return subprocess.run(command, capture_output=True, timeout=10).returncode

    assert healthcheck() == 0
    p.stop_and_check()
    wait_until(lambda: healthcheck() != 0, 5, what="the HEALTHCHECK failing once Petrel is gone")
