"""tests/e2e/test_50_config_messages.py -- `petrel validate`'s help, exactly as documented.

docs/config.md ("Error messages") shows two broken files (a tab in indentation, a misspelt
kind, misspelt fields, a `circuitBreaker`) and the stderr `petrel validate` prints for them. This
test takes the files and the expected output from that page, runs the real binary on them and
checks the exit code (1) and every stderr line, so the page cannot drift from the binary.
"""

import os
import re
import subprocess

from petrel import REPO, need_petrel, petrel_bin

CONFIG_MD = os.path.join(REPO, "docs", "config.md")


def documented_example():
    """({file name: text}, command arguments, expected stderr lines) from the section."""
    text = open(CONFIG_MD).read()
    section = text.split("\n## Error messages\n", 1)[1].split("\n## ", 1)[0]
    files, command, expected = {}, None, None
    for block in re.findall(r"^```[a-z]*\n(.*?)^```$", section, re.S | re.M):
        first, _, _ = block.partition("\n")
        if re.fullmatch(r"# [\w.-]+\.yaml", first):
            files[first[2:]] = block
        elif first.startswith("$ petrel validate "):
            command = first[len("$ petrel "):].split()
            expected = block.splitlines()[1:]
    assert files and command and expected, "example not found in docs/config.md"
    return files, command, expected


def test_documented_messages(tmp_path):
    need_petrel()
    files, command, expected = documented_example()
    assert "\t" in files["gateway.yaml"]  # the page's tab survived editing
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    # Run beside the files: the page shows their names as given, relative.
    r = subprocess.run([os.path.abspath(petrel_bin())] + command, cwd=tmp_path,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr.splitlines() == expected
