"""Parameters: one schema, one defaults file, one generated README table; clear errors on bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydranet_ros.ros import params as P

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def defaults() -> dict:
    return P.load_params_file(REPO / "config" / "hydranet.yaml")


def test_defaults_file_names_exactly_the_schema(defaults):
    expected = {p.name for p in P.expand(defaults["camera_names"])}
    assert set(defaults) == expected
    assert P.validate(defaults) == []


def test_readme_parameter_table_is_generated_from_schema_and_defaults(defaults):
    table = P.markdown_table(defaults)
    readme = (REPO / "README.md").read_text()
    assert table in readme, "README's parameter table is stale: paste the output of `hydranet params --markdown`"
    for p in P.SCHEMA:
        assert f"`{p.name.replace(P.CAMERA, '<name>')}`" in table


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "fast"}, "mode must be one of live, replay; got 'fast'"),
        ({"max_age_ms": 0}, "max_age_ms must be >= 1"),
        ({"score_threshold": 1.5}, "score_threshold must be <= 1.0"),
        ({"score_threshold": float("nan")}, "score_threshold must be finite"),
        ({"diagnostics_period_s": "1"}, "diagnostics_period_s must be float, got str"),
        ({"max_age_ms": True}, "max_age_ms must be int, got bool"),
        ({"cameras.front.compressed": "yes"}, "cameras.front.compressed must be bool"),
        ({"max_age": 5}, "unknown parameter 'max_age'"),
        ({"camera_names": ["front", "front"]}, "camera_names has duplicate names"),
        ({"camera_names": []}, "camera_names must be a non-empty list"),
        ({"camera_names": ["front", "rear"]}, "missing parameter 'cameras.rear.image_topic'"),
        ({"camera_names": ["front-left"]}, "camera name 'front-left' must be a plain identifier"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_reason(defaults, change, message):
    problems = P.validate({**defaults, **change})
    assert any(message in why for why in problems), problems


def test_an_int_is_accepted_where_a_float_is_expected(defaults):
    assert P.validate({**defaults, "score_threshold": 1}) == []


def test_params_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("hydranet:\n  mode: live\n")
    with pytest.raises(P.ParameterError, match=r"bad\.yaml: expected a '/\*\*: ros__parameters:' mapping"):
        P.load_params_file(bad)
    with pytest.raises(P.ParameterError, match="cannot read parameter file"):
        P.load_params_file(tmp_path / "missing.yaml")
