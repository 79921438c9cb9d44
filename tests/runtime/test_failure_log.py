"""The shared failure-log helpers (runtime.failure_log): request ids and the log budget."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.failure_log import LogBudget, new_request_id


def test_request_ids_are_16_hex_digits_and_do_not_repeat() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(rid) == 16 and int(rid, 16) >= 0 for rid in ids)


@given(per_second=st.integers(1, 20), asked=st.integers(0, 60))
def test_a_budget_writes_at_most_its_lines_a_second_and_counts_the_rest(per_second: int, asked: int) -> None:
    budget = LogBudget(per_second)
    taken = [budget.take(100.5) for _ in range(asked)]
    written = [t for t in taken if t is not None]
    assert len(written) == min(asked, per_second)
    assert all(t == 0 for t in written)
    # The next second's first line says how many were left out.
    assert budget.take(101.0) == max(0, asked - per_second)
    assert budget.take(101.1) == (0 if per_second > 1 else None)
