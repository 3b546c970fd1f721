"""tests/e2e/conftest.py -- pytest fixtures for Petrel's end-to-end tests.

The helpers live in tests/lib (netutil, upstream, petrel); this file puts them on sys.path and
wraps them as fixtures that clean up after themselves:

  origin            an HttpOrigin (see tests/lib/upstream.py) on an ephemeral port
  origin_factory    origin_factory(name=..., status=...) -> another HttpOrigin
  h2origin          h2origin(max_streams=..., cert=...) -> an H2Origin (HTTP/2, python3-h2)
  tcp_echo          a TcpEchoServer
  petrel            petrel(docs, concurrency=2, proxy_spec=None, start=True) -> a started Petrel;
                    at teardown each is stopped with SIGTERM and the test fails unless it
                    exited 0 without a sanitizer report
  proxied           origin + tcp_echo + petrel running simple_config(): .petrel, .origin,
                    .echo, .port (HTTP listener), .tcp_port

Tests that need the binary are skipped when PETREL_BIN is unset and build/petrel missing
(`make e2e` always sets it). Run: /usr/bin/python3 -m pytest -q tests/e2e
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

from netutil import free_port  # noqa: E402
from petrel import Petrel, need_petrel, simple_config  # noqa: E402
from upstream import H2Origin, HttpOrigin, TcpEchoServer  # noqa: E402


@pytest.fixture
def origin_factory():
    made = []

    def make(name="origin%d", **kw):
        o = HttpOrigin(name=name % len(made) if "%d" in name else name, **kw)
        made.append(o)
        return o

    yield make
    for o in made:
        o.stop()


@pytest.fixture
def origin(origin_factory):
    return origin_factory(name="origin")


@pytest.fixture
def h2origin():
    """A factory of H2Origins (tests/lib/upstream.py), stopped after the test, which fails
    if one of them hit a bug of its own."""
    made = []

    def make(**kw):
        o = H2Origin(**kw)
        made.append(o)
        return o

    yield make
    errors = []
    for o in made:
        o.stop()
        errors += o.errors
    assert not errors, "\n".join(errors)


@pytest.fixture
def tcp_echo():
    e = TcpEchoServer()
    yield e
    e.stop()


@pytest.fixture
def petrel(tmp_path):
    started = []

    def make(docs, start=True, **kw):
        need_petrel()
        p = Petrel(tmp_path / ("petrel%d" % len(started)), docs, **kw)
        started.append(p)
        if start:
            p.start()
        return p

    yield make
    problems = []
    for p in started:
        _, errs = p.stop()
        if errs:
            problems.append("petrel (%s): %s\n%s" % (p.workdir, "; ".join(errs), p.output_tail(200)))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


class Proxied:
    def __init__(self, petrel, origin, echo):
        self.petrel = petrel
        self.origin = origin
        self.echo = echo
        self.port = petrel.port
        self.tcp_port = petrel.tcp_port


@pytest.fixture
def proxied(petrel, origin, tcp_echo):
    docs = simple_config(http_port=free_port(), upstream_port=origin.port,
                         tcp_port=free_port(), tcp_upstream_port=tcp_echo.port)
    return Proxied(petrel(docs), origin, tcp_echo)
