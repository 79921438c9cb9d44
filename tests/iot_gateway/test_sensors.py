"""Simulated sensors (iot_gateway.sensors): pure, repeatable, with climate and heat waves."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from iot_gateway.sensors import SENSORS, HeatWave, SensorModel, due_samples, sample

ids = st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True)


def model(**overrides: object) -> SensorModel:
    values: dict[str, object] = {
        "seed": 7, "gateway_id": "gw-1", "region": "eu-west-1", "sensors": ("temperature", "humidity"),
        "interval_s": 1.0,
    }  # fmt: skip
    values.update(overrides)
    return SensorModel(**values)  # type: ignore[arg-type]


@given(
    st.integers(0, 2**32),
    ids,
    st.integers(0, 10**6),
    st.lists(st.sampled_from(SENSORS), min_size=1, unique=True),
)
def test_same_inputs_same_readings(seed: int, gateway_id: str, index: int, sensors: list[str]) -> None:
    one = model(seed=seed, gateway_id=gateway_id, sensors=tuple(sensors))
    two = model(seed=seed, gateway_id=gateway_id, sensors=tuple(sensors))
    assert sample(one, index, start_ts=1000.0) == sample(two, index, start_ts=1000.0)
    for reading in sample(one, index, start_ts=1000.0):
        assert reading.sensor in sensors
        assert -50 < reading.value < 2000


def test_seeds_and_gateways_differ() -> None:
    base = [sample(model(), i, start_ts=0)[0].value for i in range(20)]
    assert base != [sample(model(seed=8), i, start_ts=0)[0].value for i in range(20)]
    assert base != [sample(model(gateway_id="gw-2"), i, start_ts=0)[0].value for i in range(20)]


@given(st.integers(0, 2**32), st.integers(0, 3000))
def test_heat_wave_pushes_temperature_over_30(seed: int, index: int) -> None:
    hot = model(seed=seed, region="eu-north-1", heat_wave=HeatWave(start_s=0, duration_s=1e9))
    assert sample(hot, index, start_ts=0)[0].value > 30


def test_climate_keeps_cool_regions_cool() -> None:
    values = [sample(model(region="eu-north-1"), i * 600, start_ts=0)[0].value for i in range(144)]
    assert max(values) < 30
    assert max(values) - min(values) > 4  # the daily curve


@given(st.integers(1, 500), st.floats(0.01, 10))
def test_continued_model_keeps_the_run_clock(after: int, interval: float) -> None:
    first = model(heat_wave=HeatWave(start_s=5, duration_s=5))
    second = first.continued(interval_s=interval, after=after)
    assert second.offset_s == after * first.interval_s
    assert due_samples(second, second.offset_s) == 1
    assert due_samples(first, -1) == 0
