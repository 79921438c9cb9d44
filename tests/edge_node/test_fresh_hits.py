"""The cache's fast path (edge_node.cache_stage.FreshHits): which requests it may answer,
and when a kept plan may be replayed. The whole path through a real node is in
test_fresh_hits_node.py."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from edge_node.app import LoadedApp, app_header
from edge_node.cache_flow import EdgeCache
from edge_node.cache_stage import FreshHits, HitPlan
from edge_node.metrics import AppFigures, EdgeMetrics
from geo.lookup import Location
from httpcache import policy
from httpcache.model import StoredResponse
from httpcache.store import MemoryTier, TieredCache
from manifest.parse import parse_manifest

NOT_PLAIN = (
    b"cache-control", b"Pragma", b"authorization", b"if-none-match", b"If-Modified-Since", b"if-range",
    b"range", b"traceparent", b"tracestate", b"x-forwarded-for", b"forwarded", b"x-real-ip",
    b"cf-ipcountry", b"X-Geo-Country", b"x-edge-region",
)  # fmt: skip
APP = """
[app]
name = "hits"
version = "1.0.0"

[[route]]
path = "/c/..."
origin = "http://127.0.0.1:9"
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def loaded_app(tmp_path: Path, version: str = "1.0.0") -> LoadedApp:
    manifest = parse_manifest(APP.replace("1.0.0", version), tmp_path)
    return LoadedApp(
        manifest=manifest, modules={}, header=app_header("hits", version), figures=AppFigures("hits", version)
    )


def fresh_hits(
    store: TieredCache, app: list[LoadedApp], clock: Clock, metrics: EdgeMetrics | None = None
) -> FreshHits:
    return FreshHits(
        cache=EdgeCache(store, clock=clock),
        metrics=metrics or EdgeMetrics(),
        locate=lambda _: Location(country="KR"),
        current_app=lambda: app[0],
        max_header_bytes=1024,
        clock=clock,
    )


def full_path_key(target: bytes) -> str:
    """The key the full pipeline computes (edge_node.http_adapter and the cache lookup)."""
    path, _, query = target.partition(b"?")
    decoded = path.decode("latin-1")
    if "%" in decoded:
        decoded = unquote(decoded)
    return policy.primary_key(decoded, query.decode("latin-1"))


targets = st.binary(max_size=40).map(lambda b: b"/" + b)
field_names = st.sampled_from(
    [b"host", b"accept", b"user-agent", b"accept-language", b"x-custom", *NOT_PLAIN]
)
fields = st.lists(st.tuples(field_names, st.binary(max_size=20)), max_size=6)


@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "OPTIONS"]), target=targets, headers=fields)
def test_the_fast_path_takes_only_plain_requests_and_keys_them_as_the_full_path_does(
    method: str, target: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    hits = fresh_hits(TieredCache(MemoryTier(max_bytes=10_000, max_entry_bytes=10_000)), [], Clock(0.0))
    key = hits.plain_key(method, target, headers)
    if key is None:
        return
    assert method in {"GET", "HEAD"}
    assert not any(name.lower() in {n.lower() for n in NOT_PLAIN} for name, _ in headers)
    assert key == full_path_key(target)


def test_a_request_with_any_field_the_policy_reads_goes_the_full_way() -> None:
    hits = fresh_hits(TieredCache(MemoryTier(max_bytes=10_000, max_entry_bytes=10_000)), [], Clock(0.0))
    assert hits.plain_key("GET", b"/c/1?a=b", [(b"Host", b"x"), (b"Accept", b"*/*")]) == "/c/1?a=b"
    for name in NOT_PLAIN:
        assert hits.plain_key("GET", b"/c/1", [(b"host", b"x"), (name, b"1")]) is None, name
    assert hits.plain_key("GET", b"/c/%41", []) is None  # percent-decoded by the full path
    assert hits.plain_key("GET", b"/c/1?", []) is None  # an empty query: the key drops the "?"
    assert hits.plain_key("GET", b"http://x/c/1", []) is None  # absolute form
    assert hits.plain_key("GET", b"/c/1", [(b"x-big", b"v" * 2000)]) is None  # over the limit: a 431


def stored(body: bytes = b"hello", max_age: int = 60, at: float = 1000.0) -> StoredResponse:
    request = policy.read_request("GET", "/c/1", "", ())
    entry = policy.to_store(
        request, 200, (("cache-control", f"max-age={max_age}"),), body, request_time=at, response_time=at
    )
    assert entry is not None
    return entry


def plan_for(entry: StoredResponse, app: LoadedApp, metrics: EdgeMetrics) -> HitPlan:
    return HitPlan(
        entry=entry,
        app=app,
        route="/c/...",
        requests=metrics.requests.labels("/c/...", "200"),
        head=b"HTTP/1.1 200 OK\r\n",
        facts=b"x-cache: HIT\r\n",
        app_line=b"",
        framing=b"content-length: 5\r\n",
    )


def test_a_plan_is_replayed_while_its_entry_is_fresh_and_counted_as_a_hit(tmp_path: Path) -> None:
    store = TieredCache(MemoryTier(max_bytes=10_000, max_entry_bytes=10_000))
    app, metrics, clock = loaded_app(tmp_path), EdgeMetrics(), Clock(1000.0)
    hits = fresh_hits(store, [app], clock, metrics)
    entry = stored()
    store.put(entry)
    assert hits.find("/c/1", "127.0.0.1") is None  # no plan yet: the full path answers
    plan = plan_for(entry, app, metrics)
    hits.keep("/c/1", plan)
    clock.now = 1030.5
    assert hits.find("/c/1", "127.0.0.1") == (plan, 30)
    assert metrics.response_cache.labels("HIT", "KR").value == 1
    clock.now = 1060.0  # the lifetime is over: the policy decides (revalidate, stale, ...)
    assert hits.find("/c/1", "127.0.0.1") is None


def test_a_plan_is_not_replayed_for_another_app_version_nor_after_its_entry_changed(tmp_path: Path) -> None:
    store = TieredCache(MemoryTier(max_bytes=10_000, max_entry_bytes=10_000))
    apps, metrics, clock = [loaded_app(tmp_path)], EdgeMetrics(), Clock(1000.0)
    hits = fresh_hits(store, apps, clock, metrics)
    entry = stored()
    store.put(entry)
    hits.keep("/c/1", plan_for(entry, apps[0], metrics))
    apps[0] = loaded_app(tmp_path, "2.0.0")
    assert hits.find("/c/1", "127.0.0.1") is None
    hits.keep("/c/1", plan_for(entry, apps[0], metrics))
    assert hits.find("/c/1", "127.0.0.1") is not None
    store.put(stored(b"newer"))
    assert hits.find("/c/1", "127.0.0.1") is None
