#!/usr/bin/python3
"""tests/check_layers.py [ROOT]

Petrel's include layering (docs/architecture.md, "Layers"): dependencies point down. Reads every
`#include "..."` of the C sources under the layer directories of ROOT (the repository by
default), resolves it relative to the including file (then to ROOT, the build's -I.), and prints
each include a layer may not make as `file:line: includes X (layer A may not include layer B)`.
Exits 1 when there is any, 0 otherwise. `#include <...>` (system and library headers) is not
checked.
"""

import os
import re
import sys

# What each layer may include: a directory ("dir/") or one file. Anything else is a violation.
RULES = {
    "tls": ["tls/"],
    "config": ["config/", "tls/"],
    "xds": ["xds/", "config/", "tls/"],
    # The engine knows filters only through their ops tables and the registry.
    "proxy": ["proxy/", "config/", "tls/", "xds/", "filters/filter.h", "filters/registry.h",
              "filters/l4_filter.h", "filters/l4_registry.h"],
    "filters": ["filters/", "proxy/", "config/", "tls/"],
}

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def resolve(root, including, name):
    """The included file's path relative to root, '/'-separated."""
    beside = os.path.normpath(os.path.join(os.path.dirname(including), name))
    if not os.path.exists(os.path.join(root, beside)) and os.path.exists(os.path.join(root, name)):
        beside = os.path.normpath(name)
    return beside.replace(os.sep, "/")


def allowed(layer, target):
    return any(target.startswith(a) if a.endswith("/") else target == a for a in RULES[layer])


def violations(root):
    found = []
    for layer in sorted(RULES):
        top = os.path.join(root, layer)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for fn in sorted(filenames):
                if not fn.endswith((".c", ".h")):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, fn), root).replace(os.sep, "/")
                with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if m is None:
                            continue
                        target = resolve(root, rel, m.group(1))
                        if not allowed(layer, target):
                            other = target.split("/")[0] if "/" in target else target
                            found.append(f"{rel}:{lineno}: includes {target} "
                                         f"(layer {layer} may not include layer {other})")
    return found


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    found = violations(os.path.abspath(root))
    for v in found:
        print(v)
    if found:
        print(f"layers: {len(found)} include(s) against the layering", file=sys.stderr)
        return 1
    print("layers: every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
