#!/usr/bin/python3
"""tests/check_layers_test.py: the include-layer check (check_layers.py) on small trees made in a
temporary directory: it must fail, naming file:line, on each include against the layering, and
pass on includes the rules allow."""

import os
import subprocess
import sys
import tempfile

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_layers.py")


def run(files):
    """Writes files ({path: text}) into a fresh tree and runs the checker on it."""
    with tempfile.TemporaryDirectory(prefix="petrel-layers-") as root:
        for path, text in files.items():
            os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(root, path), "w", encoding="utf-8") as f:
                f.write(text)
        p = subprocess.run([sys.executable, CHECKER, root], capture_output=True, text=True,
                           timeout=60)
        return p.returncode, p.stdout


CLEAN = {
    "tls/tls.h": "#include <openssl/ssl.h>\n",
    "config/config.h": '#include "arena.h"\n#include "../tls/tls.h"\n',
    "config/arena.h": "",
    "xds/file_source.c": '#include "file_source.h"\n#include "../config/config.h"\n',
    "xds/file_source.h": "",
    "proxy/stream.c": '#include "../config/config.h"\n#include "../xds/file_source.h"\n'
                      '#include "../filters/filter.h"\n#include "../filters/registry.h"\n',
    "filters/filter.h": '#include "../proxy/stream.h"\n',
    "filters/registry.h": "",
    "proxy/stream.h": "",
}

failures = []


def expect(name, files, rc, lines):
    got_rc, out = run(files)
    got = out.splitlines()
    if got_rc != rc or got != lines:
        failures.append(f"{name}: expected exit {rc} with {lines}, got exit {got_rc} with {got}")
    else:
        print(f"ok {name}")


expect("a tree that follows the rules passes", CLEAN, 0, ["layers: every include points down"])
expect("config including proxy fails", dict(CLEAN, **{
    "config/compile.c": '#include "config.h"\n\n#include "../proxy/stream.h"\n'}), 1,
    ["config/compile.c:3: includes proxy/stream.h (layer config may not include layer proxy)"])
expect("an include written from the root (-I.) is resolved too", dict(CLEAN, **{
    "tls/tls.c": '#  include "config/config.h"\n'}), 1,
    ["tls/tls.c:1: includes config/config.h (layer tls may not include layer config)"])
expect("proxy including a filter's own header fails", dict(CLEAN, **{
    "filters/fault.h": "", "proxy/router.c": '#include "../filters/fault.h"\n'}), 1,
    ["proxy/router.c:1: includes filters/fault.h (layer proxy may not include layer filters)"])
expect("xds including proxy and filters including xds fail, each reported", dict(CLEAN, **{
    "xds/file_watch.c": '#include "../proxy/stream.h"\n',
    "filters/fault.c": '#include "filter.h"\n#include "../xds/file_source.h"\n'}), 1,
    ["filters/fault.c:2: includes xds/file_source.h (layer filters may not include layer xds)",
     "xds/file_watch.c:1: includes proxy/stream.h (layer xds may not include layer proxy)"])

for f in failures:
    print(f"FAIL {f}")
sys.exit(1 if failures else 0)
