"""``edgecdn world``: every subcommand through the real entry point, output and errors."""

from __future__ import annotations

import json
from pathlib import Path

import geoip2.database
import pytest

from geo.latency import LatencyModel
from geo.world import load_world
from simulator.cli import main
from tests.geo.conftest import DEFAULT_WORLD, SMALL_WORLD, city_record, write_mmdb


@pytest.fixture
def small_world_file(tmp_path: Path) -> Path:
    path = tmp_path / "world.toml"
    path.write_text(SMALL_WORLD, encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``edgecdn ARGV``; a clean failure (SystemExit) counts as an exit code."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_show_lists_regions_and_countries(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "world", "show", "--world", str(DEFAULT_WORLD))
    assert code == 0
    world = load_world(DEFAULT_WORLD)
    for region in world.regions:
        assert region.id in out
    for country in world.countries:
        assert str(country.loopback) in out
    assert f"{len(world.regions)} regions" in out
    assert f"{len(world.countries)} countries" in out


def test_show_json_is_the_world(capsys: pytest.CaptureFixture[str], small_world_file: Path) -> None:
    code, out, _ = _run(capsys, "world", "show", "--json", "--world", str(small_world_file))
    assert code == 0
    data = json.loads(out)
    assert data["seed"] == 7
    assert [r["id"] for r in data["regions"]] == ["ap-northeast-2", "eu-central-1", "us-east-1"]
    assert data["countries"][0]["cidrs"] == ["192.0.2.0/24", "2001:db8:1::/48"]
    assert data["countries"][1]["registered_country"] == "NL"


def test_world_file_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, small_world_file: Path
) -> None:
    monkeypatch.setenv("EDGECDN_WORLD", str(small_world_file))
    code, out, _ = _run(capsys, "world", "addr", "DE")
    assert (code, out) == (0, "127.20.0.1\n")


def test_addr_prints_an_address_of_the_country_block(capsys: pytest.CaptureFixture[str]) -> None:
    world = load_world(DEFAULT_WORLD)
    code, out, _ = _run(capsys, "world", "addr", "kr", "--world", str(DEFAULT_WORLD))
    assert (code, out) == (0, world.country("KR").client_address() + "\n")
    code, out, _ = _run(capsys, "world", "addr", "JP", "--index", "258", "--world", str(DEFAULT_WORLD))
    assert (code, out) == (0, world.country("JP").client_address(258) + "\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["addr", "XX"], "edgecdn world addr: unknown country 'XX'"),
        (["addr", "KR", "--index", "0"], "edgecdn world addr: index: must be between 1 and 65534"),
        (["lookup", "127.010.0.1"], "edgecdn world lookup: '127.010.0.1' is not an IP address"),
        (["rtt", "KR", "Atlantis"], "edgecdn world rtt: unknown place 'Atlantis'"),
    ],
)
def test_errors_are_one_clean_line(
    capsys: pytest.CaptureFixture[str], small_world_file: Path, tmp_path: Path, argv: list[str], message: str
) -> None:
    extra = ["--cache-dir", str(tmp_path / "cache")] if argv[0] == "lookup" else []
    code, out, err = _run(capsys, "world", *argv, "--world", str(small_world_file), *extra)
    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert "Traceback" not in err
    assert err.count("\n") == 1


def test_bad_world_file_names_the_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL_WORLD.replace("latitude = 39.04", "latitude = 139.04"), encoding="utf-8")
    code, _, err = _run(capsys, "world", "show", "--world", str(bad))
    assert code == 2
    assert err == f"edgecdn world show: {bad}: regions[2].latitude: must be between -90 and 90 (got 139.04)\n"


def test_lookup_prints_the_location_as_json(
    capsys: pytest.CaptureFixture[str], small_world_file: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    code, out, _ = _run(
        capsys, "world", "lookup", "127.20.0.9", "--world", str(small_world_file), "--cache-dir", str(cache)
    )
    assert code == 0
    location = json.loads(out)
    assert {k: location[k] for k in ("country", "continent", "city", "latitude", "longitude")} == {
        "country": "DE",
        "continent": "EU",
        "city": "Berlin",
        "latitude": 50.9,
        "longitude": 9.8,
    }
    assert Path(location["source"]).parent == cache


def test_lookup_of_an_unknown_address_is_all_null(
    capsys: pytest.CaptureFixture[str], small_world_file: Path, tmp_path: Path
) -> None:
    code, out, _ = _run(
        capsys, "world", "lookup", "8.8.8.8", "--world", str(small_world_file), "--cache-dir", str(tmp_path)
    )
    assert code == 0
    location = json.loads(out)
    assert location["ip"] == "8.8.8.8"
    assert all(
        location[k] is None for k in ("country", "continent", "city", "latitude", "longitude", "source")
    )


def test_lookup_stacks_the_given_databases_after_the_world(
    capsys: pytest.CaptureFixture[str], small_world_file: Path, tmp_path: Path
) -> None:
    real = write_mmdb(
        tmp_path / "GeoLite2-City.mmdb",
        database_type="GeoLite2-City",
        records=[
            ("8.8.8.0/24", city_record("US", "United States", "NA", "Mountain View", 37.386, -122.0838)),
            ("127.0.0.0/8", city_record("AQ", "Antarctica", "AN", "McMurdo", -77.85, 166.67)),
        ],
    )
    common = ["--world", str(small_world_file), "--cache-dir", str(tmp_path / "cache"), "--db", str(real)]
    _, out, _ = _run(capsys, "world", "lookup", "8.8.8.8", *common)
    assert json.loads(out)["city"] == "Mountain View"
    _, out, _ = _run(capsys, "world", "lookup", "127.10.0.1", *common)
    assert json.loads(out)["country"] == "KR"


def test_lookup_with_a_missing_database_names_it(
    capsys: pytest.CaptureFixture[str], small_world_file: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "GeoLite2-City.mmdb"
    code, _, err = _run(
        capsys,
        "world",
        "lookup",
        "8.8.8.8",
        "--world",
        str(small_world_file),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--db",
        str(missing),
    )
    assert code == 2
    assert err == f"edgecdn world lookup: {missing}: no such file\n"


def test_rtt_prints_the_modeled_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    world = load_world(DEFAULT_WORLD)
    expected = LatencyModel(world).rtt_ms("KR", "ap-northeast-1")
    code, out, _ = _run(capsys, "world", "rtt", "KR", "ap-northeast-1", "--world", str(DEFAULT_WORLD))
    assert code == 0
    assert out.startswith("KR (South Korea) -> ap-northeast-1 (Tokyo): ")
    assert f"modeled RTT {expected:.1f} ms" in out


def test_rtt_between_cities_and_coordinates(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "world", "rtt", "sao paulo", "40.71,-74.01", "--world", str(DEFAULT_WORLD))
    assert code == 0
    assert out.startswith("sa-east-1 (São Paulo) -> 40.71,-74.01: ")


def test_rtt_shows_the_path_and_its_parts(capsys: pytest.CaptureFixture[str]) -> None:
    world = load_world(DEFAULT_WORLD)
    route = LatencyModel(world).route("eu-central-1", "ap-northeast-2")
    assert route is not None
    code, out, _ = _run(
        capsys, "world", "rtt", "eu-central-1", "ap-northeast-2", "--world", str(DEFAULT_WORLD)
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith(
        f"modeled RTT {route.rtt_ms:.1f} ms (backbone model, {route.km:,.0f} km of fiber)"
    )
    assert lines[1] == "  path:     " + " > ".join(hub.city for hub in route.hubs)
    parts = {line.split()[0]: float(line.split()[1]) for line in lines[2:]}
    assert set(parts) == {"base", "access", "backbone", "hubs"}
    assert sum(parts.values()) == pytest.approx(route.rtt_ms, abs=0.2)


@pytest.mark.parametrize("point", ["-33.87,151.21", "-23.5,-46.6", "-0.5,-78.5"])
def test_rtt_takes_negative_coordinates(capsys: pytest.CaptureFixture[str], point: str) -> None:
    code, out, err = _run(capsys, "world", "rtt", point, "us-east-1", "--world", str(DEFAULT_WORLD))
    assert (code, err) == (0, "")
    assert out.startswith(f"{point} -> us-east-1 (Ashburn): ")
    code, out, _ = _run(capsys, "world", "rtt", "us-east-1", point, "--world", str(DEFAULT_WORLD))
    assert code == 0
    assert f"-> {point}: " in out.splitlines()[0]


def test_rtt_matrix_is_the_region_table(capsys: pytest.CaptureFixture[str]) -> None:
    world = load_world(DEFAULT_WORLD)
    model = LatencyModel(world)
    code, out, _ = _run(capsys, "world", "rtt", "--matrix", "--world", str(DEFAULT_WORLD))
    assert code == 0
    header, *rows = out.splitlines()
    ids = [region.id for region in world.regions]
    assert header.split() == ids
    assert [row.split()[0] for row in rows] == ids
    for row, a in zip(rows, world.regions, strict=True):
        values = [float(cell) for cell in row.split()[1:]]
        assert values == [round(model.rtt_ms(a, b), 1) for b in world.regions]


def test_rtt_with_a_cable_cut_routes_around_it(capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--world", str(DEFAULT_WORLD)]
    _, before, _ = _run(capsys, "world", "rtt", "us-east-1", "GB", *common)
    path = before.splitlines()[1]
    assert "New York > London" in path
    code, after, _ = _run(capsys, "world", "rtt", "us-east-1", "GB", "--cut", "new-york,london", *common)
    assert code == 0
    assert "New York > London" not in after.splitlines()[1]
    rtt = [float(text.split("modeled RTT ")[1].split()[0]) for text in (before, after)]
    assert rtt[1] > rtt[0]


def test_rtt_under_the_great_circle_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "world", "rtt", "KR", "DE", "--model", "great-circle", "--world", str(DEFAULT_WORLD)
    )
    assert code == 0
    assert out.endswith("(great-circle model)\n")
    assert out.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rtt", "KR"], "edgecdn world rtt: PLACE: give two places, like KR ap-northeast-1 (got 1)"),
        (
            ["rtt", "KR", "DE", "--cut", "london,atlantis"],
            "edgecdn world rtt: --cut: 'london,atlantis' is not a link",
        ),
        (["rtt", "--matrix", "KR"], "edgecdn world rtt: --matrix: takes no places"),
        (
            ["rtt", "KR", "DE", "--model", "great-circle", "--cut", "new-york,london"],
            "edgecdn world rtt: --cut: cuts a backbone link; the great-circle model has none",
        ),
    ],
)
def test_rtt_errors_are_one_clean_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _run(capsys, "world", *argv, "--world", str(DEFAULT_WORLD))
    assert (code, out) == (2, "")
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_build_db_writes_a_geoip2_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_path = tmp_path / "sub" / "world.mmdb"
    code, out, _ = _run(capsys, "world", "build-db", "--out", str(out_path), "--world", str(DEFAULT_WORLD))
    assert code == 0
    assert out.startswith(f"{out_path}: 42 countries")
    with geoip2.database.Reader(str(out_path)) as reader:
        assert reader.city("127.1.0.1").country.iso_code == "KR"
