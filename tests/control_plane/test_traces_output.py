"""How edgectl shows statistics: where figures come from, and which rows are partial and why."""

from __future__ import annotations

from rich.console import Console

from control_plane.edgectl.traces_output import stats_dict, stats_notes, stats_table
from protos.edgecdn.v1 import traces_pb2


def response() -> traces_pb2.GetStatsResponse:
    return traces_pb2.GetStatsResponse(
        rows=[
            traces_pb2.StatsRow(
                region="ap-northeast-2", app_name="geo-hello", app_version="1.1.0", requests=1204,
                errors=496, error_rate=0.412, p99_ms=3.5, source="nodes",
            ),
            traces_pb2.StatsRow(
                region="eu-central-1", app_name="geo-hello", app_version="1.0.0", requests=88,
                source="nodes", partial=True, partial_reason="eu-central-1-a has not reported for 9 s",
            ),
        ],
        spans_dropped=4200,
    )  # fmt: skip


def test_partial_rows_are_marked_and_explained() -> None:
    console = Console(width=80, record=True, color_system=None)
    console.print(stats_table(response().rows, 60, by_route=False))
    table = console.export_text()
    assert "1,204 " in table
    assert "88*" in table
    notes = stats_notes(response(), by_route=False)
    assert notes == [
        "counts per app version are the nodes' own (exact, sent with each heartbeat)",
        "* partial: eu-central-1 geo-hello@1.0.0 *: eu-central-1-a has not reported for 9 s",
        "nodes dropped 4,200 spans in this window",
    ]


def test_json_rows_say_their_source_and_whether_they_are_partial() -> None:
    exact, partial = (stats_dict(row, 60) for row in response().rows)
    assert (exact["source"], exact["partial"], exact["partial_reason"]) == ("nodes", False, None)
    assert partial["partial"]
    assert partial["partial_reason"] == "eu-central-1-a has not reported for 9 s"
    assert stats_dict(traces_pb2.StatsRow(requests=1), 60)["source"] == "spans"


def test_the_table_fits_80_columns_and_cuts_nothing() -> None:
    rows = list(response().rows)
    rows.append(
        traces_pb2.StatsRow(
            region="ap-southeast-2", app_name="sensor-dashboard", app_version="2024.11.3-rc1",
            route="/api/v1/sensors/...", requests=123456, requests_per_second=2057.6,
            p50_ms=12.25, p99_ms=250.5,
        )
    )  # fmt: skip
    console = Console(width=80, record=True, color_system=None)
    console.print(stats_table(rows, 60, by_route=True))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    assert "123,456" in text
    assert "250.50" in text
