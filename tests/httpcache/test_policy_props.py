"""Hypothesis invariants of the policy: storing, freshness, Vary and must-revalidate."""

from hypothesis import given
from hypothesis import strategies as st

from httpcache import policy
from httpcache.dates import format_http_date
from httpcache.headers import normalise
from httpcache.model import StoredResponse
from httpcache.policy import Action

T0 = 1_700_000_000.0

DIRECTIVES = st.sampled_from(
    [
        "no-store",
        "no-cache",
        "private",
        "public",
        "must-revalidate",
        "proxy-revalidate",
        "max-age=0",
        "max-age=60",
        "max-age=x",
        "s-maxage=30",
        "stale-while-revalidate=20",
        "stale-if-error=50",
        'private="x-a"',
        "immutable",
    ]
)
CC = st.lists(DIRECTIVES, max_size=4).map(", ".join)
REQ_CC = st.lists(
    st.sampled_from(["no-cache", "max-age=10", "max-stale", "max-stale=15", "min-fresh=5", "only-if-cached"]),
    max_size=3,
).map(", ".join)
STATUS = st.sampled_from([200, 203, 204, 301, 302, 307, 404, 500, 503])
ENC = st.sampled_from(["", "gzip", "br", "GZIP", "gzip, br"])


def _req(cc: str = "", enc: str = "") -> policy.CacheRequest:
    hs = []
    if cc:
        hs.append(("Cache-Control", cc))
    if enc:
        hs.append(("Accept-Encoding", enc))
    return policy.read_request("GET", "/a", "", hs)


def _store(cc: str, status: int, *, enc: str = "", etag: bool = True) -> StoredResponse | None:
    hs = [("Date", format_http_date(T0)), ("Cache-Control", cc), ("Vary", "Accept-Encoding")]
    if etag:
        hs.append(("ETag", '"v"'))
    return policy.to_store(_req(enc=enc), status, hs, b"x", request_time=T0, response_time=T0)


@given(CC, STATUS, st.sampled_from(["Cache-Control", "CDN-Cache-Control", "EdgeCDN-Cache-Control"]))
def test_no_store_is_never_stored(cc: str, status: int, field: str) -> None:
    hs = [("Date", format_http_date(T0)), (field, "no-store, " + cc)]
    assert policy.to_store(_req(), status, hs, b"x", request_time=T0, response_time=T0) is None


@given(CC, STATUS, REQ_CC, st.floats(min_value=0, max_value=500), st.booleans())
def test_fresh_and_stale_only_when_allowed(cc: str, status: int, req_cc: str, dt: float, etag: bool) -> None:
    e = _store(cc, status, etag=etag)
    if e is None:
        return
    r = _req(req_cc)
    now = T0 + dt
    action = policy.select(r, [e], now).action
    age = e.corrected_initial_age + (now - e.response_time)
    if age >= e.freshness_lifetime:
        assert action is not Action.FRESH
    staleness = age - e.freshness_lifetime
    if action is Action.STALE_WHILE_REVALIDATE:
        assert 0 <= staleness < e.stale_while_revalidate
    if action is Action.STALE:
        assert r.max_stale is not None
        assert 0 <= staleness <= r.max_stale
    if e.must_revalidate:
        assert action not in (Action.STALE, Action.STALE_WHILE_REVALIDATE)
        assert not policy.may_serve_stale_on_error(r, e, now, unreachable=True) or staleness <= 0


@given(st.lists(ENC, min_size=1, max_size=4), ENC)
def test_select_never_returns_a_mismatched_variant(stored_encs: list[str], enc: str) -> None:
    variants = [v for v in (_store("max-age=60", 200, enc=s) for s in stored_encs) if v is not None]
    r = _req(enc=enc)
    s = policy.select(r, variants, T0)
    if s.entry is not None:
        assert s.entry.vary == (("accept-encoding", normalise(r.headers, "accept-encoding")),)
