"""tests/e2e/test_50_cli.py -- the petrel command line as people type it.

The real binary, run with subprocess: `run --help` and `validate --help` print that
sub-command's usage and exit 0; `--config=DIR` works like `-c DIR`; `-c` without a value, an
unknown `--log-level` and an unknown option are usage errors (exit 2) that say what is wrong;
`--log-level LEVEL` and `--log-level=LEVEL` set the level; `run` on a config without listeners
warns; a start-up failure exits without logging a drain that never happened.
"""

import socket
import subprocess
import time

import pytest

from netutil import free_port, http_request
from petrel import ISTIO, need_petrel, petrel_bin, run_petrel, to_yaml


def direct_docs(port):
    """A Gateway with one HTTP server and a VirtualService answering "ok" directly."""
    return [
        {"apiVersion": ISTIO, "kind": "Gateway", "metadata": {"name": "edge"},
         "spec": {"servers": [{"port": {"number": port, "name": "http", "protocol": "HTTP"},
                               "hosts": ["*"]}]}},
        {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": "direct"},
         "spec": {"hosts": ["*"], "gateways": ["edge"],
                  "http": [{"directResponse": {"status": 200, "body": {"string": "ok\n"}}}]}},
    ]


@pytest.mark.parametrize("cmd", ["run", "validate"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_subcommand_help(cmd, flag):
    need_petrel()
    r = run_petrel([cmd, flag])
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout.startswith("usage: petrel %s " % cmd), r.stdout
    assert r.stderr == ""


def test_help_after_other_arguments():
    need_petrel()
    r = run_petrel(["run", "-c", "/nonexistent", "--help"])
    assert r.returncode == 0 and r.stdout.startswith("usage: petrel run "), r


@pytest.mark.parametrize("args, message", [
    (["run", "-c"], "petrel run: -c needs a file or directory"),
    (["run", "--config"], "petrel run: --config needs a file or directory"),
    (["run", "--config="], "petrel run: --config needs a file or directory"),
    (["run", "-c", "x", "--log-level"], "petrel run: --log-level needs a level"),
    (["run", "-c", "x", "--log-level", "loud"],
     'unknown log level "loud" (valid: error, warning, info, debug)'),
    (["run", "-c", "x", "--log-level=loud"],
     'unknown log level "loud" (valid: error, warning, info, debug)'),
    (["run", "-c", "x", "--frobnicate"], 'petrel run: unknown option "--frobnicate"'),
    (["run", "-c", "x", "-x"], 'petrel run: unknown option "-x"'),
    (["validate", "--strict", "x"], 'petrel validate: unknown option "--strict"'),
    (["validate"], "petrel validate: no configuration given"),
])
def test_usage_errors_say_what_is_wrong(args, message):
    need_petrel()
    r = run_petrel(args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert message in r.stderr, r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("style", ["--config=DIR", "--config DIR", "-c DIR"])
def test_config_option_spellings(petrel, style):
    """Every spelling starts the same proxy; --log-level=warning hides the info lines."""
    port = free_port()
    p = petrel(direct_docs(port), start=False)
    flag, _, rest = style.partition(" ")
    args = [flag.replace("DIR", p.config_dir)] + ([p.config_dir] if rest else [])
    with open(p.stdout_path, "wb") as out, open(p.stderr_path, "wb") as err:
        p.start_time = time.monotonic()
        p.proc = subprocess.Popen([petrel_bin(), "run"] + args + ["--log-level=warning"],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    p.wait_ready()
    st, _, body = http_request(port, "GET", "/")
    assert (st, body) == (200, b"ok\n")
    p.stop_and_check()
    assert " info " not in p.stderr(), p.stderr()


def test_log_level_with_space(petrel):
    port = free_port()
    p = petrel(direct_docs(port), extra_args=["--log-level", "error"])
    st, _, _ = http_request(port, "GET", "/")
    assert st == 200
    p.stop_and_check()
    assert " info " not in p.stderr() and " warning " not in p.stderr(), p.stderr()


def test_run_without_listeners_warns(petrel):
    p = petrel([])
    assert "no listeners: the config declares no Gateway server and no sidecar" in p.stderr()
    st, _ = p.admin_get("/ready")
    assert st == 200


def test_start_up_failure_does_not_log_a_drain(tmp_path):
    need_petrel()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    proxy = {"apiVersion": "petrel.io/v1alpha1", "kind": "Proxy", "metadata": {"name": "p"},
             "spec": {"bindAddress": "127.0.0.1", "adminPort": free_port(), "accessLog": ""}}
    (tmp_path / "c.yaml").write_text(to_yaml([proxy] + direct_docs(port)))
    try:
        r = run_petrel(["run", "-c", str(tmp_path / "c.yaml")], timeout=15)
    finally:
        busy.close()
    assert r.returncode == 1, r.stderr
    assert "address already in use" in r.stderr
    assert "draining" not in r.stderr and "drained" not in r.stderr, r.stderr
