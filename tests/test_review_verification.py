"""Post-event review: warnings issued (cityops.review.warnings) and their verification
(cityops.review.verification). Expected scores are computed by hand beside the tests."""

from __future__ import annotations

import json
import os
import warnings as pywarnings
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.errors import InputError
from cityops.review.verification import (
    CASE_COLUMNS,
    EXTRA_COLUMNS,
    grid_scores,
    kpis,
    load_lead_targets,
    scores_table,
    verify,
)
from cityops.review.warnings import (
    WARNING_COLUMNS,
    load_warnings,
    warnings_from_cap,
    warnings_from_log,
    warnings_from_runs,
)

T = pd.Timestamp
DAY_START, DAY_END = T("2026-07-10T00:00"), T("2026-07-11T00:00")
A_ZHEN, ZASAK, WULAN = "150627100", "150627101", "150627102"


# --------------------------------------------------------------------------- factories
def observed(rows: list[dict]) -> pd.DataFrame:
    """An observed-levels table as cityops.review.observations returns it."""
    base = {
        "town_name": "",
        "hazard": "rainstorm",
        "window_start_utc": DAY_START,
        "window_end_utc": DAY_END,
        "observed_level": 0,
        "observed_onset_utc": pd.NaT,
        "observed_peak_value": np.nan,
        "units": "mm",
        "observed_area_fraction": np.nan,
        "source": "analysis",
        "evaluated": True,
        "note": "",
    }
    frame = pd.DataFrame([{**base, **r} for r in rows])
    cols = ["town_code", *base]
    return frame[cols + [c for c in frame.columns if c not in cols]]


def issued(rows: list[dict]) -> pd.DataFrame:
    """A warnings table (cityops.review.warnings.WARNING_COLUMNS)."""
    base = {
        "hazard": "rainstorm",
        "expires_utc": pd.NaT,
        "area_fraction": np.nan,
        "source": "log",
        "reference": "test",
    }
    frame = pd.DataFrame([{**base, **r} for r in rows], columns=WARNING_COLUMNS)
    return frame


def cases_with(hits=0, misses=0, false_alarms=0, correct_negatives=0) -> pd.DataFrame:
    """Verified cases with the given outcomes: one unit per case, all in one window."""
    obs_rows, warn_rows = [], []
    kinds = (
        ["hit"] * hits
        + ["miss"] * misses
        + ["false_alarm"] * false_alarms
        + ["correct_negative"] * correct_negatives
    )
    for i, kind in enumerate(kinds):
        code = f"U{i:03d}"
        occurred = kind in ("hit", "miss")
        obs_rows.append(
            {
                "town_code": code,
                "observed_level": 2 if occurred else 0,
                "observed_onset_utc": T("2026-07-10T12:00") if occurred else pd.NaT,
            }
        )
        if kind in ("hit", "false_alarm"):
            warn_rows.append(
                {
                    "town_code": code,
                    "level": 2,
                    "issued_utc": T("2026-07-10T09:00"),
                    "onset_utc": T("2026-07-10T11:00"),
                }
            )
    return verify(issued(warn_rows), observed(obs_rows))


# --------------------------------------------------------------------------- contingency scores
def test_hand_computed_contingency_table():
    cases = cases_with(hits=3, misses=1, false_alarms=2, correct_negatives=10)
    assert cases["outcome"].value_counts().to_dict() == {
        "correct_negative": 10,
        "hit": 3,
        "false_alarm": 2,
        "miss": 1,
    }
    row = scores_table(cases).iloc[0]
    assert (row["hits"], row["misses"], row["false_alarms"], row["correct_negatives"]) == (
        3,
        1,
        2,
        10,
    )
    assert row["pod"] == 0.75  # 3 / (3 + 1)
    assert row["far"] == 0.4  # 2 / (3 + 2): the false-alarm *ratio*
    assert row["false_alarm_ratio_zh"] == row["far"]  # 空报率 is the FAR
    assert row["miss_rate"] == 0.25  # 漏报率 = 1 - POD
    assert row["csi"] == 0.5  # 3 / (3 + 1 + 2)
    assert row["frequency_bias"] == 1.25  # (3 + 2) / (3 + 1)
    hits_random = (3 + 2) * (3 + 1) / 16  # (H+FA)(H+M)/N = 1.25
    assert row["ets"] == (3 - hits_random) / (3 + 1 + 2 - hits_random)
    assert row["ets"] == float(Fraction(7, 19))
    assert row["median_lead_time_min"] == 180.0  # 12:00 - 09:00


def test_perfect_warnings():
    row = scores_table(cases_with(hits=4, correct_negatives=5)).iloc[0]
    assert row["pod"] == 1.0
    assert row["far"] == 0.0
    assert row["csi"] == 1.0
    assert row["frequency_bias"] == 1.0
    assert row["miss_rate"] == 0.0


def test_undefined_scores_are_nan_without_warnings():
    cases = cases_with(false_alarms=2, correct_negatives=3)  # nothing observed
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("error")
        row = scores_table(cases).iloc[0]
        result = kpis(cases)
        empty = scores_table(cases.iloc[:0]).iloc[0]
    assert np.isnan(row["pod"]) and np.isnan(row["frequency_bias"])  # no observed event
    assert row["csi"] == 0.0
    assert row["far"] == 1.0
    assert np.isnan(empty["pod"]) and empty["cases"] == 0
    text = json.dumps(result, allow_nan=False)  # NaN became null
    assert result["overall"]["pod"] is None
    assert result["by_hazard"]["rainstorm"]["false_alarms"] == 2
    assert '"median_lead_time_min": null' in text


def test_case_scores_agree_with_hand_formula():
    rng = np.random.default_rng(20260710)
    n = 60
    obs_level = rng.integers(0, 5, n)
    warned_level = np.where(rng.random(n) < 0.6, obs_level, rng.integers(0, 5, n))
    obs_rows = [
        {
            "town_code": f"U{i:03d}",
            "hazard": ["rainstorm", "gale"][i % 2],
            "observed_level": int(o),
            "observed_onset_utc": T("2026-07-10T12:00") if o else pd.NaT,
        }
        for i, o in enumerate(obs_level)
    ]
    warn_rows = [
        {
            "town_code": f"U{i:03d}",
            "hazard": ["rainstorm", "gale"][i % 2],
            "level": int(w),
            "issued_utc": T("2026-07-10T06:00") + pd.Timedelta(minutes=int(i)),
            "onset_utc": T("2026-07-10T10:00"),
        }
        for i, w in enumerate(warned_level)
        if w
    ]
    cases = verify(issued(warn_rows), observed(obs_rows))
    table = scores_table(cases, by="hazard").set_index("hazard")
    for hazard in ("rainstorm", "gale"):
        sel = np.array([["rainstorm", "gale"][i % 2] == hazard for i in range(n)])
        w, o = warned_level[sel] >= 1, obs_level[sel] >= 1
        h, m = int((w & o).sum()), int((~w & o).sum())
        f, c = int((w & ~o).sum()), int((~w & ~o).sum())
        row = table.loc[hazard]
        assert (row["hits"], row["misses"], row["false_alarms"], row["correct_negatives"]) == (
            h,
            m,
            f,
            c,
        )
        hr = (h + f) * (h + m) / (h + m + f + c)
        assert row["pod"] == pytest.approx(h / (h + m), rel=1e-12)
        assert row["far"] == pytest.approx(f / (h + f), rel=1e-12)
        assert row["csi"] == pytest.approx(h / (h + m + f), rel=1e-12)
        assert row["frequency_bias"] == pytest.approx((h + f) / (h + m), rel=1e-12)
        assert row["ets"] == pytest.approx((h - hr) / (h + m + f - hr), rel=1e-12)
        # Lead times of hits: onset 12:00 minus the first warning (06:00 + i min).
        leads = [
            (12 * 60 - 6 * 60) - i
            for i in range(n)
            if sel[i] and warned_level[i] >= obs_level[i] >= 1
        ]
        assert row["median_lead_time_min"] == pytest.approx(np.median(leads))


def _levels(values):
    return xr.DataArray(
        np.array(values, dtype=float),
        dims=("lat", "lon"),
        coords={"lat": [39.5, 39.6, 39.7], "lon": [109.7, 109.8, 109.9]},
    )


def test_grid_scores_agree_with_numpy():
    fc = _levels([[0, 1, 3], [2, 0, np.nan], [4, 0, 1]])
    ob = _levels([[0, 2, 0], [3, 1, 2], [np.nan, 0, 0]])
    threshold = 1
    ok = ~np.isnan(fc.values) & ~np.isnan(ob.values)
    w, o = fc.values[ok] >= threshold, ob.values[ok] >= threshold
    h, m, f, c = (w & o).sum(), (~w & o).sum(), (w & ~o).sum(), (~w & ~o).sum()
    assert (h, m, f, c) == (2, 1, 2, 2)
    with pywarnings.catch_warnings():
        pywarnings.simplefilter("error")
        ds = grid_scores(fc, ob, threshold_level=threshold)
        lazy = grid_scores(fc.chunk({"lat": 1}), ob.chunk({"lat": 2}), threshold_level=threshold)
    assert int(ds["hits"]) == h and int(ds["misses"]) == m
    assert int(ds["false_alarms"]) == f and int(ds["correct_negatives"]) == c
    assert float(ds["pod"]) == h / (h + m)
    assert float(ds["far"]) == f / (h + f)
    assert float(ds["csi"]) == h / (h + m + f)
    assert float(ds["frequency_bias"]) == (h + f) / (h + m)
    hr = (h + f) * (h + m) / (h + m + f + c)
    assert float(ds["ets"]) == pytest.approx((h - hr) / (h + m + f - hr), rel=1e-12)
    for name in ds.data_vars:  # dask gives the same
        assert float(lazy[name]) == pytest.approx(float(ds[name]), nan_ok=True)
    # Orange and above: one event observed (3 at [1, 0]), warned nowhere there.
    high = grid_scores(fc, ob, threshold_level=3)
    assert float(high["pod"]) == 0.0 and float(high["far"]) == 1.0
    none = grid_scores(fc * 0, ob * 0)
    assert np.isnan(float(none["pod"])) and np.isnan(float(none["csi"]))


def test_grid_scores_refuse_different_grids():
    fc = _levels(np.zeros((3, 3)))
    ob = fc.assign_coords(lon=[109.71, 109.8, 109.9])
    with pytest.raises(InputError, match="same grid"):
        grid_scores(fc, ob)


# --------------------------------------------------------------------------- cases
def test_columns_and_one_case_per_observed_row():
    obs = observed(
        [
            {"town_code": A_ZHEN, "observed_level": 1, "observed_onset_utc": T("2026-07-10T10:00")},
            {
                "town_code": A_ZHEN,
                "window_start_utc": DAY_END,
                "window_end_utc": DAY_END + pd.Timedelta("1D"),
            },
            {"town_code": ZASAK, "hazard": "gale"},
        ]
    )
    cases = verify(issued([]), obs)
    assert list(cases.columns[: len(CASE_COLUMNS)]) == CASE_COLUMNS
    assert list(cases.columns) == CASE_COLUMNS + EXTRA_COLUMNS
    assert len(cases) == 3
    assert list(cases["outcome"]) == ["miss", "correct_negative", "correct_negative"]


@pytest.mark.parametrize(
    ("issue", "onset", "expires", "counted"),
    [
        ("2026-07-11T00:00", "2026-07-10T20:00", None, False),  # issued exactly at window end
        ("2026-07-10T23:59", "2026-07-10T20:00", None, True),
        ("2026-07-09T18:00", "2026-07-10T00:00", None, True),  # onset exactly at window start
        ("2026-07-09T18:00", "2026-07-11T00:00", None, False),  # onset exactly at window end
        ("2026-07-09T06:00", "2026-07-09T12:00", "2026-07-10T00:00", True),  # expires at start
        ("2026-07-09T06:00", "2026-07-09T12:00", "2026-07-09T23:59", False),  # ended before
        ("2026-07-09T06:00", "2026-07-09T12:00", None, False),  # onset only, before the window
        ("2026-07-10T06:00", "2026-07-10T12:00", "2026-07-10T08:00", False),  # ended before onset
    ],
)
def test_warning_belongs_to_case_at_boundaries(issue, onset, expires, counted):
    warn = issued(
        [
            {
                "town_code": A_ZHEN,
                "level": 2,
                "issued_utc": T(issue),
                "onset_utc": T(onset),
                "expires_utc": T(expires) if expires else pd.NaT,
            }
        ]
    )
    case = verify(warn, observed([{"town_code": A_ZHEN}])).iloc[0]
    assert case["warned_level"] == (2 if counted else 0)
    assert case["outcome"] == ("false_alarm" if counted else "correct_negative")
    assert (
        (case["first_warning_utc"] == T(issue)) if counted else pd.isna(case["first_warning_utc"])
    )


def test_warning_of_another_unit_or_hazard_does_not_count():
    warn = issued(
        [
            {"town_code": ZASAK, "level": 3, "issued_utc": DAY_START, "onset_utc": DAY_START},
            {
                "town_code": A_ZHEN,
                "hazard": "gale",
                "level": 3,
                "issued_utc": DAY_START,
                "onset_utc": DAY_START,
            },
        ]
    )
    assert verify(warn, observed([{"town_code": A_ZHEN}])).iloc[0]["warned_level"] == 0


def test_level_error_orange_warned_red_observed_is_a_hit():
    warn = issued(
        [
            {
                "town_code": A_ZHEN,
                "level": 2,
                "issued_utc": T("2026-07-10T02:00"),
                "onset_utc": T("2026-07-10T10:00"),
                "area_fraction": 0.8,
            },
            {
                "town_code": A_ZHEN,
                "level": 3,
                "issued_utc": T("2026-07-10T06:00"),
                "onset_utc": T("2026-07-10T12:00"),
                "area_fraction": 0.5,
            },
        ]
    )
    obs = observed(
        [
            {
                "town_code": A_ZHEN,
                "observed_level": 4,
                "observed_onset_utc": T("2026-07-10T13:00"),
                "observed_area_fraction": 0.3,
            },
            {
                "town_code": A_ZHEN,
                "observed_level": 3,
                "observed_onset_utc": T("2026-07-10T13:00"),
                "observed_area_fraction": 0.6,
            },
        ]
    )
    red, orange = verify(warn, obs).to_dict("records")
    assert red["warned_level"] == 3 and red["observed_level"] == 4
    assert red["level_error"] == -1
    assert red["outcome"] == "hit"
    # No warning at the observed level: no lead time, and the note says why.
    assert pd.isna(red["first_warning_utc"]) and np.isnan(red["lead_time_min"])
    assert "no warning at the observed level (red)" in red["note"]
    assert red["warned_area_fraction"] == 0.5  # the share warned at the warned level
    assert red["over_warned_area_fraction"] == pytest.approx(0.2)
    # Orange observed: the first warning at or above orange is the 06:00 one.
    assert orange["level_error"] == 0
    assert orange["first_warning_utc"] == T("2026-07-10T06:00")
    assert orange["lead_time_min"] == 7 * 60
    assert orange["over_warned_area_fraction"] == 0.0  # 0.5 warned, 0.6 observed


def test_first_warning_of_a_false_alarm_is_the_first_at_any_level():
    warn = issued(
        [
            {
                "town_code": A_ZHEN,
                "level": lv,
                "issued_utc": T(t),
                "onset_utc": T("2026-07-10T12:00"),
            }
            for lv, t in ((3, "2026-07-10T05:00"), (1, "2026-07-10T03:00"))
        ]
    )
    case = verify(warn, observed([{"town_code": A_ZHEN}])).iloc[0]
    assert case["outcome"] == "false_alarm"
    assert case["warned_level"] == 3 and case["level_error"] == 3
    assert case["first_warning_utc"] == T("2026-07-10T03:00")
    assert np.isnan(case["lead_time_min"])  # nothing observed: no lead time
    assert pd.isna(case["lead_met"])


def test_lead_time_across_midnight_is_a_duration():
    """Warned 23:30 Beijing time on 10 July, onset 00:45 Beijing time on 11 July: 75 min,
    whether the times are given in UTC or with a +08:00 offset."""
    warn_utc = issued(
        [
            {
                "town_code": A_ZHEN,
                "level": 2,
                "issued_utc": T("2026-07-10T15:30"),
                "onset_utc": T("2026-07-10T16:30"),
            }
        ]
    )
    obs_utc = observed(
        [{"town_code": A_ZHEN, "observed_level": 2, "observed_onset_utc": T("2026-07-10T16:45")}]
    )
    warn_bjt = warn_utc.astype({"issued_utc": object, "onset_utc": object})
    warn_bjt.loc[0, ["issued_utc", "onset_utc"]] = [
        "2026-07-10T23:30:00+08:00",
        "2026-07-11T00:30:00+08:00",
    ]
    obs_bjt = obs_utc.astype({"observed_onset_utc": object})
    obs_bjt.loc[0, "observed_onset_utc"] = "2026-07-11T00:45:00+08:00"
    a = verify(warn_utc, obs_utc).iloc[0]
    b = verify(warn_bjt, obs_bjt).iloc[0]
    assert a["lead_time_min"] == b["lead_time_min"] == 75.0
    assert b["first_warning_utc"] == T("2026-07-10T15:30")
    assert a["lead_target"] == "alert" and bool(a["lead_met"]) is True


def test_a_warning_after_the_onset_is_late_not_a_hit():
    """Issued at 14:00 for weather that began at 13:20: nobody was warned of it. The case is a
    miss (no negative-lead hit), the late warning is kept and named."""
    warn = issued(
        [
            {
                "town_code": A_ZHEN,
                "level": 2,
                "issued_utc": T("2026-07-10T14:00"),
                "onset_utc": T("2026-07-10T14:00"),
            }
        ]
    )
    obs = observed(
        [{"town_code": A_ZHEN, "observed_level": 2, "observed_onset_utc": T("2026-07-10T13:20")}]
    )
    case = verify(warn, obs).iloc[0]
    assert case["outcome"] == "miss" and case["warned_level"] == 0
    assert pd.isna(case["lead_time_min"])
    assert case["late_warning_utc"] == T("2026-07-10T14:00")
    assert "issued 40 min after the observed onset counts as late" in case["note"]
    row = scores_table(verify(warn, obs)).iloc[0]
    assert row["warned_after_onset"] == 1 and row["hits"] == 0 and row["misses"] == 1


def test_a_timely_warning_stays_a_hit_when_a_late_one_follows():
    warn = issued(
        [
            {"town_code": A_ZHEN, "level": 2, "issued_utc": T("2026-07-10T11:00"),
             "onset_utc": T("2026-07-10T13:00")},
            {"town_code": A_ZHEN, "level": 3, "issued_utc": T("2026-07-10T14:00"),
             "onset_utc": T("2026-07-10T14:00")},
        ]
    )  # fmt: skip
    obs = observed(
        [{"town_code": A_ZHEN, "observed_level": 2, "observed_onset_utc": T("2026-07-10T13:20")}]
    )
    case = verify(warn, obs).iloc[0]
    assert case["outcome"] == "hit" and case["lead_time_min"] == 140.0
    assert case["warned_level"] == 2  # the orange after the onset warned nobody in advance


def test_lead_targets_by_hazard_and_jurisdiction():
    targets = load_lead_targets()
    assert targets.targets["impact_hint"].min_lead_min == 24 * 60
    assert targets.targets["alert"].min_lead_min == 60
    assert targets.targets["alert"].max_lead_min == 180
    assert targets.targets["kangbashi_sudden"].min_lead_min == 15
    assert "002:1002" in targets.targets["convective"].source
    assert "004:1173" in targets.targets["kangbashi_sudden"].source

    def one(hazard, *, flag=False, jurisdiction=None, convective=()):
        warn = issued(
            [
                {
                    "town_code": A_ZHEN,
                    "hazard": hazard,
                    "level": 2,
                    "issued_utc": T("2026-07-10T12:00"),
                    "onset_utc": T("2026-07-10T12:00"),
                }
            ]
        )
        obs = observed(
            [
                {
                    "town_code": A_ZHEN,
                    "hazard": hazard,
                    "observed_level": 2,
                    "observed_onset_utc": T("2026-07-10T12:18"),  # lead 18 min
                    "convective": flag,
                }
            ]
        )
        case = verify(warn, obs, jurisdiction=jurisdiction, convective=convective).iloc[0]
        return case["lead_target"], bool(case["lead_met"])

    assert one("lightning") == ("convective", False)
    assert one("lightning", jurisdiction="kangbashi") == ("kangbashi_sudden", True)
    assert one("hail", jurisdiction=SimpleNamespace(name="kangbashi")) == (
        "kangbashi_sudden",
        True,
    )
    assert one("rainstorm") == ("alert", False)
    assert one("rainstorm", flag=True) == ("convective", False)
    assert one("gale", convective={"gale"}, jurisdiction="kangbashi") == ("kangbashi_sudden", True)
    assert one("heat") == ("impact_hint", False)
    # The jurisdiction the observed table was made for, when it says so.
    obs = observed([{"town_code": A_ZHEN, "hazard": "hail"}])
    obs.attrs["jurisdiction"] = "kangbashi"
    assert verify(issued([]), obs).iloc[0]["lead_target"] == "kangbashi_sudden"


def test_not_evaluated_cases_are_kept_but_not_scored():
    warn = issued(
        [{"town_code": ZASAK, "level": 2, "issued_utc": DAY_START, "onset_utc": DAY_START}]
    )
    obs = observed(
        [
            {"town_code": A_ZHEN, "observed_level": 2, "observed_onset_utc": T("2026-07-10T05:00")},
            {"town_code": ZASAK, "evaluated": "false", "note": "no analysis covers this unit"},
        ]
    )
    cases = verify(warn, obs)
    nev = cases.iloc[1]
    assert nev["outcome"] == "" and bool(nev["evaluated"]) is False
    assert pd.isna(nev["level_error"]) and nev["warned_level"] == 2
    assert nev["note"] == "no analysis covers this unit"
    row = scores_table(cases).iloc[0]
    assert (row["cases"], row["not_evaluated"], row["misses"], row["false_alarms"]) == (1, 1, 1, 0)


def test_observed_table_must_have_its_columns():
    obs = observed([{"town_code": A_ZHEN}]).drop(columns="observed_onset_utc")
    with pytest.raises(InputError, match="observed_onset_utc"):
        verify(issued([]), obs)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)),
        min_size=1,
        max_size=12,
    )
)
def test_raising_warned_levels_never_lowers_pod(rows):
    obs = observed(
        [
            {
                "town_code": f"U{i}",
                "observed_level": o,
                "observed_onset_utc": T("2026-07-10T12:00") if o else pd.NaT,
            }
            for i, (o, _, _) in enumerate(rows)
        ]
    )

    def warnings_at(levels):
        return issued(
            [
                {
                    "town_code": f"U{i}",
                    "level": lv,
                    "issued_utc": T("2026-07-10T08:00"),
                    "onset_utc": T("2026-07-10T10:00"),
                }
                for i, lv in enumerate(levels)
                if lv >= 1
            ]
        )

    base = [w for _, w, _ in rows]
    raised = [min(4, w + d) for _, w, d in rows]
    pod = scores_table(verify(warnings_at(base), obs)).iloc[0]["pod"]
    pod_raised = scores_table(verify(warnings_at(raised), obs)).iloc[0]["pod"]
    if any(o >= 1 for o, _, _ in rows):
        assert pod_raised >= pod
    else:
        assert np.isnan(pod) and np.isnan(pod_raised)


# --------------------------------------------------------------------------- sources: CAP
def _assessment(issued_at: str, rows: list[dict]):
    """Just enough of a cityops.pipeline.Assessment for cityops.cap."""
    from cityops.geo.jurisdiction import load_jurisdiction

    base = {
        "town_name": "",
        "probability": None,
        "hazard_name_zh": "暴雨",
        "hazard_name_en": "rainstorm",
        "lead_hours": 10.0,
    }
    return SimpleNamespace(
        jurisdiction=load_jurisdiction("ejin-horo"),
        issued=T(issued_at),
        is_exercise=True,
        levels={},
        response=None,
        table=pd.DataFrame(
            [{**base, **r, "proposed_level": r["level"], "evaluated": True} for r in rows]
        ),
    )


def test_cap_alert_update_cancel_round_trip(tmp_path):
    from cityops import cap

    first = _assessment(
        "2026-07-10T00:00",
        [
            {
                "town_code": A_ZHEN,
                "hazard": "rainstorm",
                "level": 4,
                "onset_utc": "2026-07-10T13:00:00Z",
                "end_utc": "2026-07-10T14:00:00Z",
            },
            {
                "town_code": ZASAK,
                "hazard": "rainstorm",
                "level": 2,
                "onset_utc": "2026-07-10T12:00:00Z",
                "end_utc": "2026-07-10T15:00:00Z",
            },
            {
                "town_code": WULAN,
                "hazard": "gale",
                "level": 1,
                "onset_utc": "2026-07-10T06:00:00Z",
                "end_utc": "2026-07-10T09:00:00Z",
                "hazard_name_zh": "大风",
                "hazard_name_en": "gale",
            },
        ],
    )
    run1 = cap.write_cap(first, tmp_path / "run1" / "cap")
    alerts1 = cap.build_alerts(first)
    ident1 = alerts1["rainstorm"].findtext(f"{{{cap.CAP_NS}}}identifier")
    # Six hours later: A Zhen still red (continues), Zasak dropped (stood down).
    second = _assessment(
        "2026-07-10T06:00",
        [
            {
                "town_code": A_ZHEN,
                "hazard": "rainstorm",
                "level": 4,
                "onset_utc": "2026-07-10T13:00:00Z",
                "end_utc": "2026-07-10T14:00:00Z",
            }
        ],
    )
    cap.write_cap(
        second,
        tmp_path / "run2" / "cap",
        previous={"rainstorm": (ident1, "2026-07-10T08:00:00+08:00")},
    )
    ident2 = "150627-20260710T0600Z-rainstorm"
    cancel = cap.cancel_alert(
        "rainstorm",
        ident2,
        T("2026-07-10T06:00"),
        code="150627",
        sent=T("2026-07-10T12:30"),
        status="Exercise",
    )
    cap.write_alert(cancel, tmp_path / "run3" / "cap" / "cap_rainstorm.xml")

    # Drafts are proposals: read here as if issued, to follow the Update/Cancel chain.
    drafts = ("Draft", "Exercise")
    assert warnings_from_cap(run1).empty  # by default a draft is not a warning
    only_first = warnings_from_cap(run1, statuses=drafts)
    assert list(only_first.columns) == WARNING_COLUMNS
    assert set(only_first["source"]) == {"cap"}
    rows = only_first.set_index("town_code")
    assert rows.loc[A_ZHEN, "level"] == 4 and rows.loc[ZASAK, "level"] == 2
    assert rows.loc[WULAN, "hazard"] == "gale" and rows.loc[WULAN, "level"] == 1
    assert (rows["issued_utc"] == T("2026-07-10T00:00")).all()  # <sent> 08:00+08:00
    rain = rows[rows["hazard"] == "rainstorm"]
    assert (rain["onset_utc"] == T("2026-07-10T12:00")).all()  # alert-wide onset
    assert (rain["expires_utc"] == T("2026-07-10T15:00")).all()
    assert rows.loc[A_ZHEN, "reference"].endswith(f"#{ident1}")

    every = warnings_from_cap(
        [tmp_path / "run1" / "cap", tmp_path / "run2" / "cap", tmp_path / "run3" / "cap"],
        statuses=drafts,
    )
    rain = every[every["hazard"] == "rainstorm"].set_index(["town_code", "issued_utc"])
    # The Update continued A Zhen (red again) and stood Zasak down at 06:00, before its onset.
    assert rain.loc[(ZASAK, T("2026-07-10T00:00")), "expires_utc"] == T("2026-07-10T06:00")
    # The Cancel at 12:30 ended the whole chain.
    assert rain.loc[(A_ZHEN, T("2026-07-10T00:00")), "expires_utc"] == T("2026-07-10T12:30")
    assert rain.loc[(A_ZHEN, T("2026-07-10T06:00")), "expires_utc"] == T("2026-07-10T12:30")
    gale = every[every["hazard"] == "gale"].iloc[0]
    assert gale["expires_utc"] == T("2026-07-10T09:00")  # another hazard's chain: untouched

    obs = observed(
        [
            {"town_code": A_ZHEN, "observed_level": 4, "observed_onset_utc": T("2026-07-10T12:00")},
            {"town_code": ZASAK, "observed_level": 2, "observed_onset_utc": T("2026-07-10T12:00")},
        ]
    )
    a, z = verify(every, obs).to_dict("records")
    assert a["outcome"] == "hit" and a["first_warning_utc"] == T("2026-07-10T00:00")
    assert a["lead_time_min"] == 12 * 60
    assert z["outcome"] == "miss"  # stood down before the rain came


def test_cap_parsing_is_hardened(tmp_path):
    bomb = tmp_path / "cap_rainstorm.xml"
    bomb.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE alert [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;">]>\n'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&b;</identifier></alert>',
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"cap_rainstorm\.xml"):
        warnings_from_cap(bomb)
    other = tmp_path / "other.xml"
    other.write_text("<feed/>", encoding="utf-8")
    with pytest.raises(InputError, match=r"not a CAP 1\.2"):
        warnings_from_cap(other)


# --------------------------------------------------------------------------- sources: CSV log
def test_log_of_issued_signals(tmp_path):
    path = tmp_path / "signals.csv"
    path.write_text(
        "town_code,hazard,level,issued_utc,onset_utc,expires_utc\n"
        f"{A_ZHEN},rainstorm,yellow,2026-07-10T10:00:00+08:00,,\n"
        f"{A_ZHEN},rainstorm,3,2026-07-10T04:00:00Z,,\n"
        f"{A_ZHEN},rainstorm,0,2026-07-10T09:00:00Z,,\n"
        f"{ZASAK},gale,蓝色,2026-07-10T01:00:00Z,2026-07-10T03:00:00Z,2026-07-10T06:00:00Z\n",
        encoding="utf-8",
    )
    table = warnings_from_log(path)
    assert list(table.columns) == WARNING_COLUMNS
    assert list(table["level"]) == [1, 2, 3]
    gale, yellow, orange = table.to_dict("records")
    assert gale["onset_utc"] == T("2026-07-10T03:00") and gale["expires_utc"] == T(
        "2026-07-10T06:00"
    )
    assert yellow["issued_utc"] == T("2026-07-10T02:00") == yellow["onset_utc"]
    # Upgraded at 04:00 (continued), lifted at 09:00: both signals end then.
    assert yellow["expires_utc"] == orange["expires_utc"] == T("2026-07-10T09:00")
    assert orange["reference"] == f"{path}:3"


@pytest.mark.parametrize(
    ("line", "column"),
    [
        (f"{A_ZHEN},rainstorm,purple,2026-07-10T02:00:00Z", "level"),
        (f"{A_ZHEN},rainstorm,7,2026-07-10T02:00:00Z", "level"),
        (f"{A_ZHEN},monsoon,2,2026-07-10T02:00:00Z", "hazard"),
        (f"{A_ZHEN},rainstorm,2,yesterday", "issued_utc"),
        (",rainstorm,2,2026-07-10T02:00:00Z", "town_code"),
    ],
)
def test_log_bad_value_names_file_and_column(tmp_path, line, column):
    path = tmp_path / "bad_log.csv"
    path.write_text(f"town_code,hazard,level,issued_utc\n{line}\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        warnings_from_log(path)
    message = str(err.value)
    assert "bad_log.csv" in message and f"column {column!r}" in message and "line 2" in message
    assert "\n" not in message


def test_log_missing_column(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("town_code,hazard,level\n150627100,rainstorm,2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"log\.csv: column 'issued_utc' is missing"):
        warnings_from_log(path)


# --------------------------------------------------------------------------- sources: runs
def _write_run(folder, *, issued_at, rows, with_json=True):
    """A run folder as cityops brief writes it (town_hazards.csv and run.json)."""
    from cityops.geo.risk import COLUMNS

    folder.mkdir(parents=True)
    ref = T(issued_at)
    records = []
    for r in rows:
        onset = T(r["onset"]) if r.get("onset") else None
        records.append(
            {
                "town_code": r["town_code"],
                "town_name": "",
                "hazard": r.get("hazard", "rainstorm"),
                "level": r["level"],
                "level_name": ["none", "blue", "yellow", "orange", "red"][r["level"]],
                "onset_utc": onset.strftime("%Y-%m-%dT%H:%M:%SZ") if onset else "",
                "lead_hours": round((onset - ref) / pd.Timedelta("1h"), 2) if onset else "",
                "area_fraction": r.get("area", 0.0),
                "evaluated": "true" if r.get("evaluated", True) else "false",
                "end_utc": T(r["end"]).strftime("%Y-%m-%dT%H:%M:%SZ") if r.get("end") else "",
            }
        )
    frame = pd.DataFrame(records).reindex(columns=[*COLUMNS, "end_utc"]).astype(object).fillna("")
    frame.to_csv(folder / "town_hazards.csv", index=False, encoding="utf-8")
    if with_json:
        run = {
            "issued": ref.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reference_time": ref.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "jurisdiction": "ejin-horo",
        }
        (folder / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return folder


def test_run_archive(tmp_path):
    root = tmp_path / "archive"
    _write_run(
        root / "20260710T0000Z",
        issued_at="2026-07-10T00:00",
        rows=[
            {
                "town_code": A_ZHEN,
                "level": 3,
                "onset": "2026-07-10T13:00",
                "end": "2026-07-10T15:00",
                "area": 0.6,
            },
            {
                "town_code": ZASAK,
                "level": 2,
                "onset": "2026-07-10T12:00",
                "end": "2026-07-10T14:00",
            },
            {"town_code": WULAN, "level": 0},
            {"town_code": "150627103", "level": 0, "evaluated": False},
        ],
    )
    _write_run(
        root / "20260710T0600Z",
        issued_at="2026-07-10T06:00",
        rows=[
            {
                "town_code": A_ZHEN,
                "level": 3,
                "onset": "2026-07-10T13:00",
                "end": "2026-07-10T16:00",
            },
            {"town_code": ZASAK, "level": 0},
        ],
    )
    os.symlink("20260710T0600Z", root / "latest")
    table = warnings_from_runs(root)
    assert list(table.columns) == WARNING_COLUMNS
    assert len(table) == 3  # latest is not read twice
    assert set(table["source"]) == {"run"}
    rows = table.set_index(["town_code", "issued_utc"])
    first = rows.loc[(A_ZHEN, T("2026-07-10T00:00"))]
    assert first["level"] == 3 and first["onset_utc"] == T("2026-07-10T13:00")
    assert first["expires_utc"] == T("2026-07-10T15:00")  # continued by the 06Z run
    assert first["area_fraction"] == 0.6
    assert first["reference"] == str(root / "20260710T0000Z")
    # The 06Z run stood Zasak down before its onset.
    assert rows.loc[(ZASAK, T("2026-07-10T00:00")), "expires_utc"] == T("2026-07-10T06:00")
    # The same through load_warnings, from the folder or from latest alone.
    assert load_warnings(root).equals(table)
    assert len(load_warnings(root / "latest")) == 1


def test_run_folder_without_run_json_uses_lead_hours(tmp_path):
    folder = _write_run(
        tmp_path / "assess_out",
        issued_at="2026-07-10T03:00",
        rows=[{"town_code": A_ZHEN, "level": 1, "onset": "2026-07-10T20:00"}],
        with_json=False,
    )
    table = warnings_from_runs(folder / "town_hazards.csv")
    assert table.iloc[0]["issued_utc"] == T("2026-07-10T03:00")
    assert pd.isna(table.iloc[0]["expires_utc"])


def test_load_warnings_dispatches_by_kind(tmp_path):
    run = _write_run(
        tmp_path / "run",
        issued_at="2026-07-10T00:00",
        rows=[{"town_code": A_ZHEN, "level": 2, "onset": "2026-07-10T12:00"}],
    )
    log = tmp_path / "log.csv"
    log.write_text(
        f"town_code,hazard,level,issued_utc\n{ZASAK},gale,1,2026-07-10T05:00:00Z\n",
        encoding="utf-8",
    )
    table = load_warnings([run, log])
    assert list(table["source"]) == ["run", "log"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="neither a brief run"):
        load_warnings(empty)
    with pytest.raises(InputError, match="file not found"):
        load_warnings(tmp_path / "missing.nc")


# --------------------------------------------------------------------------- sources: forecasts
def test_warnings_from_forecast_match_its_table(tmp_path):
    from cityops.review.warnings import warnings_from_forecasts
    from cityops.scenarios import write_scenario

    path = write_scenario("july-rainstorm", tmp_path / "july.nc")
    table = warnings_from_forecasts(path, jurisdiction="ejin-horo", rules="national")
    assert set(table["source"]) == {"forecast"} and set(table["reference"]) == {str(path)}
    assert (table["issued_utc"] == T("2026-07-10T00:00")).all()  # assessed at its issue time
    assert (table["level"] >= 1).all()
    assert (table["expires_utc"] >= table["onset_utc"]).all()
    rain = table.set_index(["town_code", "hazard"]).loc[(A_ZHEN, "rainstorm")]
    assert rain["level"] == 4
    assert rain["onset_utc"] == T("2026-07-10T13:00")
    assert rain["expires_utc"] == T("2026-07-10T14:00")
