"""The pure fault decisions: the book (which link is faulted when) and the request parser."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from faultrelay.errors import BadFaultRequestError, UnknownLinkError
from faultrelay.faults import Fault, FaultBook, FaultRequest, parse_fault_request

LINKS = ("cp-ap-northeast-2", "cp-eu-central-1", "cp-sa-east-1")


def partition(link: str, now: float, for_s: float | None) -> Fault:
    return Fault.starting(link, FaultRequest(kind="partition", for_s=for_s), now)


def test_a_fault_holds_until_its_expiry_and_not_at_it() -> None:
    book = FaultBook(LINKS)
    book.set(partition(LINKS[0], 100.0, 30.0))
    assert book.cuts(LINKS[0], 100.0)
    assert book.cuts(LINKS[0], 129.999)
    assert not book.cuts(LINKS[0], 130.0)
    assert not book.cuts(LINKS[1], 100.0)
    assert book.next_expiry() == 130.0
    assert [fault.link for fault in book.expire(130.0)] == [LINKS[0]]
    assert book.faults() == {}


def test_a_fault_without_for_s_lasts_until_healed() -> None:
    book = FaultBook(LINKS)
    book.set(partition(LINKS[0], 0.0, None))
    assert book.cuts(LINKS[0], 1e12)
    assert book.next_expiry() is None
    assert book.expire(1e12) == []
    healed = book.heal(LINKS[0])
    assert healed is not None
    assert healed.remaining_s(5.0) is None
    assert not book.cuts(LINKS[0], 1.0)


def test_unknown_links_are_refused_by_name() -> None:
    book = FaultBook(LINKS)
    with pytest.raises(UnknownLinkError) as caught:
        book.set(partition("cp-nowhere", 0.0, 1.0))
    assert "cp-nowhere" in str(caught.value)
    assert all(link in str(caught.value) for link in LINKS)
    assert caught.value.to_json()["known"] == sorted(LINKS)
    with pytest.raises(UnknownLinkError):
        book.heal("cp-nowhere")


class BookMachine(RuleBasedStateMachine):
    """Random sets, heals, expiries and clock moves against a plain model of the book."""

    def __init__(self) -> None:
        super().__init__()
        self.book = FaultBook(LINKS)
        self.now = 0.0
        self.model: dict[str, float | None] = {}  # link -> expires_at, as last set

    @rule(link=st.sampled_from(LINKS), for_s=st.none() | st.floats(0.001, 100.0))
    def set_fault(self, link: str, for_s: float | None) -> None:
        self.book.set(partition(link, self.now, for_s))
        self.model[link] = None if for_s is None else self.now + for_s

    @rule(link=st.sampled_from(LINKS))
    def heal(self, link: str) -> None:
        self.book.heal(link)
        self.model.pop(link, None)
        assert not self.book.cuts(link, self.now)

    @rule()
    def heal_all(self) -> None:
        self.book.heal_all()
        self.model.clear()

    @rule(seconds=st.floats(0.0, 60.0))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @precondition(lambda self: bool(self.model))
    @rule()
    def expire(self) -> None:
        for fault in self.book.expire(self.now):
            assert fault.expires_at is not None
            assert fault.expires_at <= self.now
            del self.model[fault.link]

    @invariant()
    def never_outlives_its_expiry(self) -> None:
        for link in LINKS:
            fault = self.book.active(link, self.now)
            expires_at = self.model.get(link, -math.inf)
            in_force = link in self.model and (expires_at is None or self.now < expires_at)
            assert (fault is not None) == in_force
            assert self.book.cuts(link, self.now) == in_force
            if fault is not None and fault.expires_at is not None:
                assert self.now < fault.expires_at

    @invariant()
    def one_fault_per_link(self) -> None:
        faults = self.book.faults()
        assert set(faults) == set(self.model)
        assert all(fault.link == link for link, fault in faults.items())

    @invariant()
    def next_expiry_is_the_earliest(self) -> None:
        pending = [at for at in self.model.values() if at is not None]
        assert self.book.next_expiry() == (min(pending) if pending else None)


TestBookMachine = BookMachine.TestCase


@given(for_s=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**6), 10**6))
def test_for_s_is_accepted_exactly_when_positive_and_finite(for_s: float) -> None:
    body = f'{{"kind": "partition", "for_s": {for_s!r}}}'.replace("nan", "NaN").replace("inf", "Infinity")
    if math.isfinite(for_s) and for_s > 0:
        assert parse_fault_request(body.encode()).for_s == pytest.approx(float(for_s))
    else:
        with pytest.raises(BadFaultRequestError, match="for_s"):
            parse_fault_request(body.encode())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "body is not valid JSON"),
        (b"\xff", "body is not valid JSON"),
        (b"[]", "body must be a JSON object, not list"),
        (b"{}", "kind must be one of partition (got None)"),
        (b'{"kind": "latency"}', "kind must be one of partition (got 'latency')"),
        (b'{"kind": "partition", "for_s": -1}', "for_s must be a positive number of seconds (got -1)"),
        (b'{"kind": "partition", "for_s": 0}', "for_s must be a positive number of seconds (got 0)"),
        (b'{"kind": "partition", "for_s": NaN}', "NaN is not a JSON value"),
        (b'{"kind": "partition", "for_s": "30s"}', "for_s must be a number of seconds (got '30s')"),
        (b'{"kind": "partition", "for_s": true}', "for_s must be a number of seconds (got True)"),
        (b'{"kind": "partition", "for": 30}', "unknown field(s) 'for'; fields are kind, for_s, reason"),
        (b'{"kind": "partition", "reason": 5}', "reason must be a string"),
    ],
)
def test_bad_requests_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(BadFaultRequestError) as caught:
        parse_fault_request(body)
    assert message in caught.value.message


def test_a_good_request() -> None:
    assert parse_fault_request(b'{"kind": "partition", "for_s": 30, "reason": "chaos"}') == FaultRequest(
        kind="partition", for_s=30.0, reason="chaos"
    )
    assert parse_fault_request(b'{"kind": "partition"}') == FaultRequest(kind="partition")
