"""Per-hit decision cost: hishel 2.0's sans-IO RFC 9111 spec against httpcache.policy.

    .venv/bin/python -m bench.hishel_policy [--quick] [--hishel-path DIR]

hishel is not a dependency: the bench imports it from ``--hishel-path`` (default
/tmp/hishel/x, an unpacked wheel) or an installed copy, and skips with a message otherwise.
hishel's package ``__init__`` pulls its storages (msgpack, sqlite); the bench only needs
``hishel._core``, so it registers a bare package object to import the spec alone.

Both sides decide on the same stored response (200, max-age=3600, ETag, Vary:
Accept-Encoding, 1 KiB) for the same GET: hishel ``IdleClient.next(request, [entry])``
(the lookup state: parse, Vary, freshness, Age header) against ours
``read_request + select + answer`` (which also builds the client's headers with Age).
A conditional request (If-None-Match) is measured too: hishel answers it by revalidating
upstream only when stale, ours answers 304 from the cache.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import timeit
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from httpcache import policy
from httpcache.dates import format_http_date

BODY = b"x" * 1024


def _load_hishel(path: str) -> Any | None:
    """hishel._core._spec and models, or None when hishel is unavailable."""
    root = Path(path) / "hishel"
    if root.is_dir() and "hishel" not in sys.modules:
        pkg = types.ModuleType("hishel")
        pkg.__path__ = [str(root)]
        sys.modules["hishel"] = pkg
    try:
        spec = importlib.import_module("hishel._core._spec")
        models = importlib.import_module("hishel._core.models")
    except ImportError:
        return None
    return types.SimpleNamespace(spec=spec, models=models)


def _ours(now: float, conditional: bool) -> Callable[[], object]:
    date = format_http_date(now - 10)
    req_headers = [("Host", "ex.com"), ("Accept-Encoding", "gzip, br"), ("User-Agent", "bench")]
    if conditional:
        req_headers.append(("If-None-Match", '"v1"'))
    stored_req = policy.read_request("GET", "/a", "b=1", req_headers[:3])
    entry = policy.to_store(
        stored_req,
        200,
        [
            ("Date", date),
            ("Cache-Control", "max-age=3600"),
            ("ETag", '"v1"'),
            ("Vary", "Accept-Encoding"),
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(BODY))),
        ],
        BODY,
        request_time=now - 10,
        response_time=now - 10,
    )
    assert entry is not None
    variants = [entry]

    def hit() -> object:
        r = policy.read_request("GET", "/a", "b=1", req_headers)
        s = policy.select(r, variants, now)
        assert s.entry is not None
        return policy.answer(r, s.entry, now)

    expected = 304 if conditional else 200
    a = hit()
    assert isinstance(a, policy.Answer)
    assert a.status == expected, a
    return hit


def _theirs(h: Any, now: float, conditional: bool) -> Callable[[], object]:
    m = h.models
    hs = {"host": "ex.com", "accept-encoding": "gzip, br", "user-agent": "bench"}
    stored_request = m.Request(method="GET", url="http://ex.com/a?b=1", headers=m.Headers(dict(hs)))
    response = m.Response(
        status_code=200,
        headers=m.Headers(
            {
                "date": format_http_date(now - 10),
                "cache-control": "max-age=3600",
                "etag": '"v1"',
                "vary": "Accept-Encoding",
                "content-type": "text/plain",
                "content-length": str(len(BODY)),
            }
        ),
        stream=iter([BODY]),
    )
    entries = [m.Entry(id=uuid.uuid4(), request=stored_request, response=response)]
    if conditional:
        hs["if-none-match"] = '"v1"'
    idle = h.spec.IdleClient(options={"shared": True})

    def hit() -> object:
        req = m.Request(method="GET", url="http://ex.com/a?b=1", headers=m.Headers(dict(hs)))
        return idle.next(req, entries)

    state = hit()
    assert type(state).__name__ == "FromCache", state
    return hit


def _rate(fn: Callable[[], object], number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6  # microseconds per hit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--hishel-path", default="/tmp/hishel/x")
    args = ap.parse_args(argv)
    number = 2_000 if args.quick else 20_000
    now = time.time()  # hishel reads the wall clock for Age, so both sides use it
    h = _load_hishel(args.hishel_path)
    for conditional in (False, True):
        label = "conditional GET (If-None-Match)" if conditional else "plain GET"
        ours = _rate(_ours(now, conditional), number)
        line = f"{label:34} ours {ours:7.2f} us/hit"
        if h is not None:
            theirs = _rate(_theirs(h, now, conditional), number)
            line += f"   hishel {theirs:7.2f} us/hit   ratio {theirs / ours:5.1f}x"
        print(line)
    if h is None:
        print(f"hishel unavailable (not importable from {args.hishel_path} nor installed): compared nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
