"""The run's one assessment, kept in the run and read back (issue 17, item 1).

A ``brief`` run assesses once and keeps the assessment in ``DIR/state``; each notebook reads
it. These tests check that what is read back is the assessment that was written (every
frame, grid, level and condition field), that every section of a briefing page comes out
identical from either, and that a notebook refuses a state made from other inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.errors import InputError
from cityops.pipeline import assess
from cityops.report import briefing as br
from cityops.run_state import (
    check_same_inputs,
    frame_from_json,
    frame_to_json,
    read_run_state,
    write_run_state,
)
from cityops.scenarios import write_scenario

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def _inputs(forecast, **kw) -> dict:
    base = {"forecast": [str(Path(forecast).resolve())], "rules": "national", "now": None,
            "report_probability": 0.3, "mapping": None, "observed": None, "history": None}  # fmt: skip
    return {**base, **kw}


def _assert_same(a, b) -> None:
    xr.testing.assert_identical(a.forecast, b.forecast)
    xr.testing.assert_identical(a.weights, b.weights)
    if a.joined is None:
        assert b.joined is None
    else:
        xr.testing.assert_identical(a.joined, b.joined)
    for name in ("table", "periods", "assets", "geohazards", "geohazard_points"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).attrs == getattr(b, name).attrs, name
    assert a.now == b.now and a.sources == b.sources
    assert (a.response is None) == (b.response is None)
    if a.response is not None:
        for name in ("postures", "tasks", "dissemination"):
            pd.testing.assert_frame_equal(getattr(a.response, name), getattr(b.response, name))
        assert a.response.hq_consultation == b.response.hq_consultation
    for ra, rb in ((a.levels, b.levels), (a.extreme, b.extreme)):
        if ra is None:
            assert rb is None
            continue
        assert (ra.table.ruleset, ra.table.version) == (rb.table.ruleset, rb.table.version)
        assert list(ra.hazards) == list(rb.hazards)
        for ha in ra:
            hb = rb[ha.hazard]
            assert ha.notes == hb.notes and ha.observed_until == hb.observed_until
            np.testing.assert_array_equal(
                ha.season if ha.season is not None else [],
                hb.season if hb.season is not None else [],
            )
            if ha.level is None:
                assert hb.level is None
            else:
                xr.testing.assert_identical(ha.level, hb.level)
            assert list(ha.conditions) == list(hb.conditions)
            for level, conds in ha.conditions.items():
                for i, (ca, cb) in enumerate(zip(conds, hb.conditions[level], strict=True)):
                    # the reloaded table's own condition, equal to the one the run used
                    assert cb.condition is hb.rules.level_rule(level).conditions[i]
                    assert cb.condition == ca.condition
                    assert (ca.variable, ca.note) == (cb.variable, cb.note)
                    for x, y in ((ca.value, cb.value), (ca.holds, cb.holds)):
                        if x is None:
                            assert y is None
                        else:
                            xr.testing.assert_identical(x, y)


SECTIONS = ("title_html", "headline_html", "hazard_table_html", "risk_summary_html",
            "assets_html", "geohazard_html", "periods_html", "response_html")  # fmt: skip


def _pages(assessment, lang: str) -> dict:
    out = {}
    for code in assessment.table["town_code"].unique():
        for name in SECTIONS:
            out[code, name] = getattr(br, name)(assessment, code, lang=lang)
    out["data"] = br.data_section_html(assessment, lang=lang)
    out["duty"] = br.duty_html(assessment, lang=lang)
    return out


CASES = {
    # observations joined before the forecast, the drought history: every optional part
    "july-rainstorm+observed+history": dict(
        forecast=SAMPLES / "july-rainstorm.nc",
        observed=[str(SAMPLES / "july-rainstorm.observed.nc")],
        history=str(SAMPLES / "july-rainstorm.history.nc"),
    ),
    "january-blizzard": dict(forecast=SAMPLES / "january-blizzard.nc"),
    "quiet-day kangbashi": dict(forecast=SAMPLES / "quiet-day.nc", jurisdiction="kangbashi"),
}


@pytest.mark.parametrize("case", CASES)
def test_round_trip_is_the_same_assessment_and_the_same_pages(case, tmp_path):
    spec = dict(CASES[case])
    forecast = spec.pop("forecast")
    juris = spec.pop("jurisdiction", "ejin-horo")
    a = assess(forecast, jurisdiction=juris, **spec)
    folder = write_run_state(a, tmp_path / "state", inputs=_inputs(forecast, **spec))
    b = read_run_state(folder)
    _assert_same(a, b)
    for lang in ("zh", "en"):
        assert _pages(a, lang) == _pages(b, lang)


def test_ensemble_round_trip(tmp_path):
    fc = write_scenario("july-rainstorm", tmp_path / "ens.nc", members=4)
    a = assess(fc)
    assert "member" in a.forecast.dims
    b = read_run_state(write_run_state(a, tmp_path / "state", inputs=_inputs(fc)))
    _assert_same(a, b)
    assert _pages(a, "zh") == _pages(b, "zh")


@pytest.fixture(scope="module")
def kept(tmp_path_factory):
    fc = SAMPLES / "july-rainstorm.nc"
    folder = tmp_path_factory.mktemp("run") / "state"
    write_run_state(assess(fc), folder, inputs=_inputs(fc))
    return fc, folder


def test_notebook_reads_the_run_and_does_not_assess(kept, monkeypatch):
    fc, folder = kept

    def no_assess(*args, **kwargs):
        raise AssertionError("a notebook given the run assessed the forecast again")

    monkeypatch.setattr("cityops.pipeline.assess", no_assess)
    p = br.validate_parameters(**{**_params(fc), "run": str(folder)})
    a = br.assessment_for(p)
    assert a is br.assessment_for(p)  # read once per process (a kernel runs many units)
    assert a.jurisdiction.code is not None and len(a.table)


def _params(fc) -> dict:
    return {"forecast": str(fc), "town": "阿镇", "jurisdiction": "ejin-horo", "rules": "national",
            "now": "", "lang": "zh", "output_dir": "", "report_probability": 0.3,
            "mapping": "", "observed": "", "history": "", "run": ""}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"forecast": str(SAMPLES / "quiet-day.nc")}, "forecast"),
        ({"now": "2026-07-10T06:00:00Z"}, "now"),
        ({"report_probability": 0.5}, "report_probability"),
        ({"rules": str(Path(br.__file__).parents[1] / "data" / "levels.yaml")}, "rules"),
        ({"history": str(SAMPLES / "july-rainstorm.history.nc")}, "history"),
        ({"jurisdiction": "kangbashi", "town": "150603001"}, "run is for"),
    ],
)
def test_a_state_of_other_inputs_is_refused(kept, change, named):
    fc, folder = kept
    params = {**_params(fc), **change, "run": str(folder)}
    try:
        p = br.validate_parameters(**params)
    except InputError as err:  # e.g. an unknown town: refused before the state is read
        pytest.skip(f"not a valid parameter set here: {err}")
    with pytest.raises(InputError, match=named):
        br.assessment_for(p)


def test_same_inputs_accepted(kept):
    fc, folder = kept
    a = read_run_state(folder)
    check_same_inputs(a, _inputs(fc))  # no error


def test_missing_or_foreign_state_is_one_line_error(tmp_path, kept):
    with pytest.raises(InputError, match="no run state"):
        read_run_state(tmp_path)
    with pytest.raises(InputError, match="holds no run state"):
        br.validate_parameters(**{**_params(kept[0]), "run": str(tmp_path)})
    (tmp_path / "state.json").write_text(json.dumps({"format": 999}), encoding="utf-8")
    with pytest.raises(InputError, match="format 999"):
        read_run_state(tmp_path)
    (tmp_path / "state.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="unreadable"):
        read_run_state(tmp_path)


def test_a_changed_rule_table_is_refused(kept, tmp_path):
    _fc, folder = kept
    copy = tmp_path / "state"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((copy / "state.json").read_text(encoding="utf-8"))
    manifest["levels"]["version"] = "0.0-other"
    (copy / "state.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match="run the briefing again"):
        read_run_state(copy)


_cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**62), 2**62),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_cells, st.floats(allow_nan=True), st.text(max_size=5)), max_size=6))
def test_frames_round_trip_exactly(rows):
    frame = pd.DataFrame(rows, columns=["mixed", "number", "text"])
    frame["text"] = frame["text"].astype("str")
    frame["count"] = pd.array([i if i % 2 else pd.NA for i in range(len(frame))], dtype="Int64")
    frame["time"] = pd.to_datetime(
        [pd.Timestamp("2026-07-10T00:00Z") + pd.Timedelta(hours=i) if i % 3 else pd.NaT
         for i in range(len(frame))], utc=True,
    )  # fmt: skip
    frame.attrs = {"windows": [("05-01", "09-30")], "flag": True, "n": np.int64(3)}
    back = frame_from_json(json.loads(json.dumps(frame_to_json(frame))))
    pd.testing.assert_frame_equal(frame, back)
    assert back.attrs == frame.attrs
    for a, b in zip(frame["mixed"], back["mixed"], strict=True):
        assert type(a) is type(b) or (a is None and b is None)
