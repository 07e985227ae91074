"""The whole review (issue #8): forecast against observed, scores, CLI outputs, drill mode."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cityops.errors import InputError
from cityops.review.run import ReviewInputs, parameters_to_inputs, run_review
from cityops.scenarios import Perturbation, make_scenario, write_scenario

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "jurisdictions" / "ejin-horo" / "review" / "samples"
ISSUED = pd.Timestamp("2026-07-10T00:00")  # july-rainstorm's fixed issue time (UTC)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("review")
    fc = write_scenario("july-rainstorm", d / "fc.nc")
    late_east = make_scenario(
        "july-rainstorm",
        observed=True,
        observed_shift=Perturbation(dt=2.0, dx=20.0, dy=0.0, amp=1.0),
    )
    late_east.to_netcdf(d / "late_east.nc")
    return {"forecast": fc, "late_east": d / "late_east.nc", "dir": d}


@pytest.fixture(scope="module")
def any_cell(tmp_path_factory):
    """Ejin Horo under the level policy ``any_cell``: the hand reasoning below follows the
    storm's cells through each town (a town is in the storm when a cell of it is); the
    default area-share policy is tested in tests/test_unit_levels.py and
    tests/test_review_observations.py."""
    dst = tmp_path_factory.mktemp("juris") / "ejin-horo"
    shutil.copytree(ROOT / "data" / "jurisdictions" / "ejin-horo", dst)
    (dst / "level_policy.yaml").write_text(
        "rule: any_cell\nsource: tests - hand reasoning on the storm's cells\n", encoding="utf-8"
    )
    return str(dst)


@pytest.fixture(scope="module")
def shifted(files, any_cell):
    return run_review(
        ReviewInputs(forecast=files["forecast"], observed=files["late_east"], jurisdiction=any_cell)
    )


def _case(review, code, hazard="rainstorm", day="2026-07-10"):
    c = review.cases
    row = c[(c.town_code == code) & (c.hazard == hazard) & (c.window_start_utc == day)]
    assert len(row) == 1
    return row.iloc[0]


def test_perfect_forecast_scores_pod_one_far_zero(files):
    review = run_review(ReviewInputs(forecast=files["forecast"], observed=files["forecast"]))
    k = review.kpis["overall"]
    assert k["hits"] > 0 and k["misses"] == 0 and k["false_alarms"] == 0
    assert k["pod"] == 1.0 and k["far"] == 0.0 and k["csi"] == 1.0
    assert review.status == "Exercise"  # scenario inputs are always an exercise


def test_storm_two_hours_late_and_20_km_east(shifted):
    """The forecast storm crosses the banner seat; what happened came 2 h later, 20 km east.

    Hand reasoning on the rainstorm of 10 July (24 h window from 00 UTC), the warning issued
    with the forecast at 00 UTC:
    - 阿勒腾席热镇 and 伊金霍洛镇 lie in the storm's path either way: forecast red from 13 UTC,
      observed red from 15 UTC (2 h later) → hits, lead 15 h = 900 min.
    - 札萨克镇: forecast orange from 12 UTC, observed orange from 14 UTC → hit, lead 840 min.
    - 乌兰木伦镇 and 纳林陶亥镇, east of the forecast swath, get the displaced storm with no
      warning → misses.
    - 苏布尔嘎镇 and 红庆河镇, on the western edge of the forecast swath, stay dry → false alarms.
    """
    for code, lead in (("150627100", 900), ("150627106", 900), ("150627101", 840)):
        case = _case(shifted, code)
        assert case.outcome == "hit"
        assert case.warned_level == case.observed_level
        assert case.first_warning_utc == ISSUED
        assert case.lead_time_min == lead
        assert case.observed_onset_utc == ISSUED + pd.Timedelta(minutes=lead)
    for code in ("150627102", "150627103"):
        case = _case(shifted, code)
        assert (case.outcome, case.warned_level) == ("miss", 0) and case.observed_level >= 1
        assert pd.isna(case.lead_time_min)
    for code in ("150627104", "150627105"):
        case = _case(shifted, code)
        assert (case.outcome, case.observed_level) == ("false_alarm", 0)
        assert case.warned_level >= 1


def test_banner_scores_agree_with_the_hand_formulas(shifted):
    cases = shifted.cases[shifted.cases["evaluated"].astype(bool)]
    h = int((cases.outcome == "hit").sum())
    m = int((cases.outcome == "miss").sum())
    fa = int((cases.outcome == "false_alarm").sum())
    cn = int((cases.outcome == "correct_negative").sum())
    k = shifted.kpis["overall"]
    assert (k["hits"], k["misses"], k["false_alarms"], k["correct_negatives"]) == (h, m, fa, cn)
    n = h + m + fa + cn
    hr = (h + fa) * (h + m) / n
    assert k["pod"] == pytest.approx(h / (h + m))
    assert k["far"] == pytest.approx(fa / (h + fa))
    assert k["csi"] == pytest.approx(h / (h + m + fa))
    assert k["ets"] == pytest.approx((h - hr) / (h + m + fa - hr))
    assert k["frequency_bias"] == pytest.approx((h + fa) / (h + m))
    assert k["miss_rate"] == pytest.approx(1 - k["pod"])


def test_signal_log_warns_later_and_lead_time_follows(files, tmp_path, any_cell):
    log = tmp_path / "signals.csv"
    log.write_text(
        "town_code,hazard,level,issued_utc\n150627100,rainstorm,4,2026-07-10T14:30:00Z\n",
        encoding="utf-8",
    )
    review = run_review(
        ReviewInputs(forecast=[str(log)], observed=files["late_east"], jurisdiction=any_cell)
    )
    case = _case(review, "150627100")
    # Observed red from 15:00 UTC; the red signal went out at 14:30 → 30 min ahead.
    assert case.outcome == "hit" and case.lead_time_min == 30


def test_parameters_are_validated_in_the_first_cell(files):
    with pytest.raises(InputError, match="unknown parameter"):
        parameters_to_inputs(forecast=str(files["forecast"]), observed="x", colour="red")
    with pytest.raises(InputError, match=r"parameter observed: .*not found"):
        parameters_to_inputs(forecast=str(files["forecast"]), observed="/nonexistent.nc")
    with pytest.raises(InputError, match="parameter exercise: expected bool"):
        parameters_to_inputs(
            forecast=str(files["forecast"]), observed=str(files["forecast"]), exercise="yes"
        )
    with pytest.raises(InputError, match="window"):
        parameters_to_inputs(
            forecast=str(files["forecast"]), observed=str(files["forecast"]), window="7h"
        )


@pytest.mark.slow
def test_cli_review_writes_the_contract_and_keeps_the_case(files, tmp_path):
    from cityops.review.drill import write_drill_ledger

    ledger = tmp_path / "drill.sqlite"
    write_drill_ledger(files["forecast"], ledger)
    out, library = tmp_path / "review", tmp_path / "cases"
    cmd = [
        sys.executable, "-m", "cityops.cli", "-q", "review",
        "--forecast", str(files["forecast"]), "--observed", str(files["late_east"]),
        "--ledger", str(ledger), "--hotline", str(SAMPLES / "hotline_12345.csv"),
        "--alarms", str(SAMPLES / "alarms.csv"), "--incidents", str(SAMPLES / "incidents.csv"),
        "--out", str(out), "--case-library", str(library), "--exercise",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == out / "review.html"
    ver = pd.read_csv(out / "verification.csv")
    assert list(ver.columns[:11]) == [
        "town_code", "hazard", "window_start_utc", "window_end_utc", "warned_level",
        "observed_level", "outcome", "level_error", "first_warning_utc", "observed_onset_utc",
        "lead_time_min",
    ]  # fmt: skip
    assert (ver["status"] == "Exercise").all()
    assert ver["window_start_utc"].str.endswith("Z").all()
    kpis = json.loads((out / "kpis.json").read_text(encoding="utf-8"))
    for key in ("hits", "misses", "false_alarms", "correct_negatives", "pod", "far", "csi",
                "ets", "frequency_bias", "miss_rate", "median_lead_time_min"):  # fmt: skip
        assert key in kpis["overall"]
        assert all(key in v for v in kpis["by_hazard"].values())
    assert kpis["status"] == "Exercise" and "response" in kpis
    assert kpis["response"]["tasks"]["total"] > 0
    html = (out / "review.html").read_text(encoding="utf-8")
    assert "演练" in html and "阿勒腾席热镇" in html and "复盘" in html
    assert "<script>alert" not in html
    cases = pd.read_csv(library / "cases.csv")
    assert list(cases["case_id"]) == ["150627-20260710-exercise"]
    # Rerun: the case is replaced, not duplicated, and the output folder replaced.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(library / "cases.csv")) == 1


def test_cli_review_bad_input_is_one_line_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cityops.cli", "review", "--forecast", str(tmp_path / "none.nc"),
         "--observed", str(tmp_path / "none.nc"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_inputs_are_parsed_once_at_the_boundary(files, tmp_path, monkeypatch):
    """Issue 17: the inputs become typed objects once (the template's first cell, or the
    command line); the review and every notebook section then use them as they are. One
    jurisdiction load for the whole review (before: 2 in the review and 6 more in the
    notebook's sections), each input time read from its text once (before: twice in the
    notebook, in the parameter check and again in the review)."""
    import cityops.geo.jurisdiction as gj
    import cityops.timeutil as tu
    from cityops.geo.jurisdiction import Jurisdiction
    from cityops.report import review as rr
    from cityops.review.drill import write_drill_ledger

    ledger = tmp_path / "drill.sqlite"
    write_drill_ledger(files["forecast"], ledger)
    times = {"start": "2026-07-10T00:00Z", "end": "2026-07-11T00:00Z", "now": "2026-07-11T06:00Z"}
    loads, texts = [], []
    real_resolve, real_parse = gj._resolve, tu.parse_utc

    def counting_parse(value, **kw):
        texts.append(value)
        return real_parse(value, **kw)

    monkeypatch.setattr(gj, "_resolve", lambda ref: loads.append(ref) or real_resolve(ref))
    for name, module in list(sys.modules.items()):
        if name.startswith("cityops") and getattr(module, "parse_utc", None) is real_parse:
            monkeypatch.setattr(module, "parse_utc", counting_parse)

    inputs, lang, _ = parameters_to_inputs(
        forecast=str(files["forecast"]), observed=str(files["late_east"]), ledger=str(ledger),
        alarms=str(SAMPLES / "alarms.csv"), **times,
    )  # fmt: skip
    assert isinstance(inputs.jurisdiction, Jurisdiction)
    assert inputs.start == ISSUED and inputs.now == ISSUED + pd.Timedelta("30h")
    assert inputs.window_length == pd.Timedelta("24h")
    assert inputs.forecast == (Path(files["forecast"]),) and inputs.ledger == Path(ledger)
    review = run_review(inputs)
    for section in (rr.title_html, rr.cases_html, rr.response_html, rr.safety_html,
                    rr.level_maps, rr.timeline_figure, rr.data_html):  # fmt: skip
        section(review, lang=lang)
    assert len(loads) == 1, loads
    assert {k: texts.count(v) for k, v in times.items()} == dict.fromkeys(times, 1)
    assert review.kpis["period"]["start_utc"] == "2026-07-10T00:00:00Z"


def test_typed_inputs_refuse_bad_values_in_one_line(files):
    good = {"forecast": str(files["forecast"]), "observed": str(files["late_east"])}
    for bad, match in (
        ({"forecast": ""}, "--forecast: give forecast files"),
        ({"observed": []}, "--observed: give gridded analyses"),
        ({"start": "tomorrow-ish"}, "review start: cannot read 'tomorrow-ish' as a time"),
        ({"window": "7h"}, "--window: '7h' does not divide the day"),
        ({"jurisdiction": "atlantis"}, "unknown jurisdiction 'atlantis'"),
    ):
        with pytest.raises(InputError, match=match) as err:
            ReviewInputs(**{**good, **bad})
        assert "\n" not in str(err.value)
    typed = ReviewInputs(**good, start=ISSUED, hotline="")
    assert typed.start is not None and typed.start == ISSUED and typed.hotline is None
    assert ReviewInputs(**good, jurisdiction=typed.jurisdiction).jurisdiction is typed.jurisdiction
