"""edgectl's tables: every one fits an 80-column terminal with its headers and ids whole, and
``-o wide`` shows every column unabbreviated whatever the width."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table

from control_plane.edgectl.cli import build_parser
from control_plane.edgectl.output import (
    age,
    app_table,
    apps_table,
    modules_table,
    nodes_notes,
    nodes_table,
    print_table,
)
from control_plane.edgectl.traces_output import stats_table, traces_table, waterfall
from protos.edgecdn.v1 import apps_pb2, common_pb2, modules_pb2, nodes_pb2, traces_pb2

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
TRACE_IDS = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b700f067aa0ba902b7")
DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
ERROR = "module_compile_failed: bad magic"


def stamp(at: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(at)
    return value


def render(table: Table, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def headers(table: Table) -> list[str]:
    return [str(column.header) for column in table.columns]


def assert_fits(text: str, table: Table, ids: list[str]) -> None:
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert "…" not in text
    header_line = next(line for line in lines if line.startswith(str(table.columns[0].header)))
    for header in headers(table):
        assert header in header_line, (header, text)
    for id_ in ids:
        assert any(id_ in line for line in lines), (id_, text)


def nodes() -> list[nodes_pb2.NodeInfo]:
    places = [
        ("ap-northeast-2-a", "ap-northeast-2", "Seoul", nodes_pb2.NODE_STATUS_DISCONNECTED),
        ("ap-southeast-2-a", "ap-southeast-2", "Sydney", nodes_pb2.NODE_STATUS_READY),
        ("sa-east-1-a", "sa-east-1", "São Paulo", nodes_pb2.NODE_STATUS_UNREACHABLE),
    ]
    listed = [
        nodes_pb2.NodeInfo(
            node_id=node_id, region=region, pop=pop, status=status, address=f"http://127.0.0.1:4012{i}",
            app_name="geo-hello", app_version="1.1.0", assignment_version="12", desired_version="13",
            last_heartbeat=stamp(NOW - timedelta(seconds=3)), capacity_rps=5000,
            load=common_pb2.Load(requests_per_second=4521.5, in_flight=12, errors_per_second=103.2),
        )
        for i, (node_id, region, pop, status) in enumerate(places)
    ]  # fmt: skip
    code, message = ERROR.split(": ", 1)
    listed[0].last_error.CopyFrom(common_pb2.ErrorDetail(code=code, message=message))
    return listed


def test_nodes_keep_status_rps_and_errors_at_80_columns() -> None:
    table = nodes_table(nodes(), now=NOW)
    text = render(table, 80)
    assert_fits(text, table, ["ap-northeast-2-a", "ap-southeast-2-a", "sa-east-1-a", "ap-northeast-2"])
    assert headers(table) == ["NODE", "REGION", "STATUS", "APP", "RPS", "ERR/S"]
    for word in ("disconnected", "unreachable", "ready", "4521.5", "103.2", "geo-hello@1.1.0"):
        assert word in text
    assert "http://" not in text  # the address is in -o wide
    assert nodes_notes(nodes()) == [f"ap-northeast-2-a: last error: {ERROR}"]


def test_nodes_wide_shows_every_column() -> None:
    table = nodes_table(nodes(), now=NOW, wide=True)
    text = render(table, 200)
    for header in ("NODE", "REGION", "POP", "STATUS", "APP", "RPS", "ERR/S", "IN FLIGHT"):
        assert header in headers(table)
    for header in ("ASSIGNED", "DESIRED", "HEARTBEAT", "ADDRESS", "LAST ERROR"):
        assert header in headers(table)
    assert headers(table)[0] in text.splitlines()[0]
    assert max(len(line) for line in text.splitlines()) <= 200
    for word in ("São Paulo", "http://127.0.0.1:40120", " 3s ", ERROR):
        assert word in text


def test_a_wide_table_is_printed_whole_on_a_narrow_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    listed = nodes()
    long_error = "the module imports env.missing_function, which this node does not provide " * 2
    listed[1].last_error.message = long_error
    print_table(nodes_table(listed, now=NOW, wide=True), wide=True)
    out = capsys.readouterr().out
    assert long_error.strip() in out  # on one line: nothing wrapped, nothing cut
    assert max(len(line) for line in out.splitlines()) > 200


def test_a_table_on_a_tiny_terminal_hides_no_column(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    table = nodes_table(nodes(), now=NOW)
    print_table(table)
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert all(name in header for name in headers(table))
    assert "ap-southeast-2-a  ap-southeast-2" in out


def traces() -> list[traces_pb2.TraceSummary]:
    return [
        traces_pb2.TraceSummary(
            trace_id=TRACE_IDS[0], root_service="edge-router", root_name="GET route", span_count=5,
            start_time=stamp(NOW - timedelta(minutes=5)), duration_ms=61234.567,
            status=traces_pb2.SPAN_STATUS_ERROR, region="ap-northeast-2", app_version="2024.11.3-rc1",
        ),
        traces_pb2.TraceSummary(
            trace_id=TRACE_IDS[1], root_service="edge-router", root_name="GET route", span_count=3,
            start_time=stamp(NOW - timedelta(seconds=7)), duration_ms=12.3,
            status=traces_pb2.SPAN_STATUS_OK, region="af-south-1", app_version="1.1.0",
        ),
    ]  # fmt: skip


def test_trace_ids_are_whole_at_80_columns() -> None:
    table = traces_table(traces(), now=NOW)
    text = render(table, 80)
    assert_fits(text, table, [*TRACE_IDS, "ap-northeast-2", "61234.57"])
    assert headers(table) == ["TRACE ID", "AGE", "REGION", "VERSION", "MS", "STATUS"]
    assert " 5m " in text
    assert " 7s " in text
    wide = render(traces_table(traces(), now=NOW, wide=True), 200)
    for word in (*TRACE_IDS, "2024.11.3-rc1", "2025-03-01T11:55:00Z", "edge-router: GET route", "SPANS"):
        assert word in wide


def trace() -> traces_pb2.Trace:
    def span(span_id: str, parent: str, name: str, offset_ms: int, duration_ms: float) -> traces_pb2.Span:
        return traces_pb2.Span(
            trace_id=TRACE_IDS[0], span_id=span_id, parent_span_id=parent, service="edge-node", name=name,
            kind="SERVER", start_time=stamp(NOW + timedelta(milliseconds=offset_ms)), duration_ms=duration_ms,
        )  # fmt: skip

    root = span("00f067aa0ba902b7", "", "GET route", 0, 20)
    root.service = "edge-router"
    failed = span("10f067aa0ba902b7", root.span_id, "GET /api/v1/sensors/...", 2, 15)
    failed.status = traces_pb2.SPAN_STATUS_ERROR
    failed.status_message = "handler answered 500: the sensor store refused the connection"
    return traces_pb2.Trace(
        trace_id=TRACE_IDS[0],
        spans=[root, failed, span("20f067aa0ba902b7", failed.span_id, "GET origin", 4, 10)],
    )


def test_the_waterfall_fits_80_columns() -> None:
    table = waterfall(trace())
    text = render(table, 80)
    assert_fits(text, table, [TRACE_IDS[0], "  GET /api/v1/sensors/...", "edge-router"])
    assert text.splitlines()[0].startswith(f"trace {TRACE_IDS[0]} ")
    assert "refused" in text
    assert "█" * 10 in text  # the time line narrows, to no fewer than 10 columns
    wide_table = waterfall(trace(), wide=True)
    wide = render(wide_table, 200)
    assert "handler answered 500: the sensor store refused the connection" in wide
    for word in ("START MS", "SPAN ID", "KIND", "10f067aa0ba902b7", "+2.000", "█" * 40):
        assert word in wide


def test_stats_fit_80_columns_and_wide_adds_errors_p95_and_source() -> None:
    rows = [
        traces_pb2.StatsRow(
            region="ap-southeast-2", app_name="sensor-dashboard", app_version="2024.11.3-rc1",
            route="/api/v1/sensors/...", requests=123456, errors=41, error_rate=41 / 123456,
            requests_per_second=2057.6, p50_ms=12.25, p95_ms=80.75, p99_ms=250.5, source="nodes",
        )
    ]  # fmt: skip
    table = stats_table(rows, 60, by_route=True)
    assert_fits(render(table, 80), table, ["ap-southeast-2", "123,456", "2057.6", "250.50"])
    wide = render(stats_table(rows, 60, by_route=True, wide=True), 200)
    for word in (
        "sensor-dashboard@2024.11.3-rc1",
        "/api/v1/sensors/...",
        "ERRORS",
        "P95 MS",
        "80.75",
        "nodes",
    ):
        assert word in wide


def test_modules_and_apps_fit_80_columns_and_wide_shows_whole_digests() -> None:
    modules = [
        modules_pb2.ModuleInfo(
            sha256=DIGEST, name="sensor-dashboard-renderer", size_bytes=12_345_678,
            abi=common_pb2.ABI_REACTOR, created_at=stamp(NOW), imports=["wasi_snapshot_preview1.fd_write"],
            used_by=["sensor-dashboard@2024.11.2", "sensor-dashboard@2024.11.3-rc1"],
        )
    ]  # fmt: skip
    table = modules_table(modules)
    text = render(table, 80)
    assert_fits(text, table, [DIGEST[:16], "12,345,678", "reactor"])
    wide = render(modules_table(modules, wide=True), 200)
    assert max(len(line) for line in wide.splitlines()) <= 200
    for word in (
        DIGEST,
        "sensor-dashboard-renderer",
        "2025-03-01T12:00:00Z",
        "sensor-dashboard@2024.11.3-rc1",
    ):
        assert word in wide

    apps = [apps_pb2.AppSummary(name="geo-hello", latest="1.10.0", versions=[f"1.{n}.0" for n in range(11)])]
    table = apps_table(apps)
    assert_fits(render(table, 80), table, ["geo-hello", "1.10.0"])
    assert "1.0.0, 1.1.0" in render(apps_table(apps, wide=True), 200)

    app = apps_pb2.AppVersion(
        name="geo-hello", version="1.1.0", digest="ab" * 32,
        routes=[
            apps_pb2.Route(path="/hello", module="hello"),
            apps_pb2.Route(path="/static/...", origin="http://origin.example.internal:9000/assets"),
        ],
        modules=[
            apps_pb2.ModuleRef(
                name="hello", sha256=DIGEST, abi=common_pb2.ABI_WAGI, memory_bytes=2 * 1024 * 1024,
                timeout=Duration(nanos=50_000_000),
            )
        ],
    )  # fmt: skip
    table = app_table(app)
    text = render(table, 80)
    assert_fits(text, table, ["geo-hello@1.1.0", DIGEST[:16], "2,097,152"])
    wide = render(app_table(app, wide=True), 200)
    for word in (DIGEST, "ab" * 32, "http://origin.example.internal:9000/assets", "50 ms", "wagi"):
        assert word in wide


def test_ages_read_like_kubectl() -> None:
    ago = [timedelta(seconds=-3), timedelta(seconds=42), timedelta(minutes=17), timedelta(hours=5)]
    assert [age(stamp(NOW - delta), NOW) for delta in ago] == ["0s", "42s", "17m", "5h"]
    assert age(stamp(NOW - timedelta(days=3)), NOW) == "3d"


@pytest.mark.parametrize(
    "argv",
    [
        ["-o", "wide", "nodes", "list"],
        ["nodes", "list", "-o", "wide"],
        ["traces", "list", "-o", "wide"],
        ["traces", "show", TRACE_IDS[0], "-o", "wide"],
        ["stats", "-o", "wide"],
        ["modules", "list", "-o", "wide"],
        ["apps", "show", "geo-hello", "-o", "wide"],
        ["status", "-o", "wide"],
        ["rollout", "list", "-o", "wide"],
        ["rollout", "status", "7", "-o", "wide"],
    ],
)
def test_every_command_takes_wide(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).output == "wide"
