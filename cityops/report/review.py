"""The review notebook's sections: HTML tables and figures of a :class:`cityops.review.run.Review`.

Every function takes the review and the report language and returns HTML or a figure; the
template calls one per section. Times are shown in Beijing time; free text from input files
is escaped.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cityops.i18n import level_label, t
from cityops.report.fonts import configure_cjk_font
from cityops.report.plots import _geom_patch, _local, level_colours
from cityops.rules.table import level_names, load_rule_table
from cityops.timeutil import format_local

__all__ = [
    "cases_html",
    "data_html",
    "findings_html",
    "level_maps",
    "library_html",
    "response_html",
    "safety_html",
    "scores_html",
    "summary_html",
    "timeline_figure",
    "title_html",
]

_FMT = "%m-%d %H:%M"
_CELL = 'style="text-align:left;vertical-align:top"'
_EVENTS = ("hit", "miss", "false_alarm")


def _table(head: list[str], rows: list[list[str]]) -> str:
    out = [
        '<table style="border-collapse:collapse;font-size:0.9em" border="1" cellpadding="4">',
        "<tr>" + "".join(f"<th {_CELL}>{h}</th>" for h in head) + "</tr>",
    ]
    out += ["<tr>" + "".join(f"<td {_CELL}>{c}</td>" for c in row) + "</tr>" for row in rows]
    out.append("</table>")
    return "\n".join(out)


def _badge(level, lang: str) -> str:
    if level is None or pd.isna(level):
        return ""
    level = int(level)
    colour = level_names()[level]["colour"]
    fg = "#000" if level in (0, 2) else "#fff"
    return (
        f'<span style="background:{colour};color:{fg};padding:1px 8px;border-radius:3px;'
        f'border:1px solid #999;white-space:nowrap">{html.escape(level_label(level, lang))}</span>'
    )


def _num(value, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "—"
    return fmt.format(value)


def _minutes(value, lang: str) -> str:
    if value is None or pd.isna(value):
        return "—"
    return t("minutes", lang, n=f"{float(value):.0f}")


def _hazard_names(review, lang: str) -> dict[str, str]:
    table = load_rule_table(review.inputs.rules)
    return {h: table.hazards[h].name(lang) for h in table.hazards}


def _unit_names(review, lang: str) -> dict[str, str]:
    juris = review.inputs.jurisdiction
    names = {u.code: (u.name_zh if lang == "zh" else u.name_en) for u in juris.units}
    # banner-level tasks are the jurisdiction's own (town_code = its code)
    names[str(juris.code)] = juris.name_zh if lang == "zh" else juris.name_en
    return names


def section(key: str, *, lang: str = "zh") -> str:
    """A section heading."""
    return f"<h2>{html.escape(t(key, lang))}</h2>"


def title_html(review, *, lang: str = "zh") -> str:
    """Title, period and (for drills) the exercise banner."""
    juris = review.inputs.jurisdiction
    name = juris.name_zh if lang == "zh" else juris.name_en
    period = (
        f"{format_local(review.start, '%Y-%m-%d %H:%M')} — "
        f"{format_local(review.end, '%Y-%m-%d %H:%M')} · {t('times_note', lang)}"
    )
    out = [
        f"<h1 style='margin-bottom:2px'>{html.escape(t('review_title', lang, name=name))}</h1>",
        f"<div style='color:#555'>{t('review_period', lang)}: {period} · "
        f"{t('review_window', lang)}: {html.escape(str(review.inputs.window))}</div>",
    ]
    if review.is_exercise:
        out.append(
            "<div style='margin-top:6px;padding:6px 10px;background:#fff3cd;border:2px dashed "
            f"#b58100;font-weight:bold'>{html.escape(t('review_exercise', lang))}</div>"
        )
    return "\n".join(out)


def summary_html(review, *, lang: str = "zh") -> str:
    """The headline box: counts and banner-level scores."""
    k = review.kpis["overall"]
    text = t(
        "review_summary",
        lang,
        cases=k["cases"],
        hits=k["hits"],
        misses=k["misses"],
        false_alarms=k["false_alarms"],
        pod=_num(k["pod"]),
        far=_num(k["far"]),
        csi=_num(k["csi"]),
        ets=_num(k["ets"]),
        lead=_minutes(k["median_lead_time_min"], lang),
    )
    return (
        "<div style='border-left:10px solid #1E64C8;background:#fafafa;padding:10px 14px;"
        f"font-size:1.05em;max-width:900px'>{html.escape(text)}</div>"
    )


def scores_html(review, *, lang: str = "zh") -> str:
    """Scores per hazard that had any warning or event, with their counts."""
    names = _hazard_names(review, lang)
    rows = []
    frame = review.scores
    events = frame[(frame["hits"] + frame["misses"] + frame["false_alarms"]) > 0]
    overall = review.kpis["overall"]
    for r in [*events.to_dict("records"), {**overall, "hazard": None}]:
        label = names.get(r["hazard"], r["hazard"]) if r["hazard"] else t("map_all", lang)
        rows.append(
            [
                html.escape(str(label)),
                f"{r['hits']}/{r['misses']}/{r['false_alarms']}/{r['correct_negatives']}",
                _num(r["pod"]),
                _num(r["far"]),
                _num(r["miss_rate"]),
                _num(r["csi"]),
                _num(r["ets"]),
                _num(r["frequency_bias"]),
                _minutes(r["median_lead_time_min"], lang),
            ]
        )
    head = [
        t(k, lang)
        for k in (
            "col_hazard",
            "col_counts",
            "col_pod",
            "col_far",
            "col_miss_rate",
            "col_csi",
            "col_ets",
            "col_bias",
            "col_lead",
        )
    ]
    return _table(head, rows)


def cases_html(review, *, lang: str = "zh") -> str:
    """Hits, misses and false alarms, one row each, in time order."""
    names, units = _hazard_names(review, lang), _unit_names(review, lang)
    cases = review.cases[review.cases["outcome"].isin(_EVENTS)]
    cases = cases.sort_values(["window_start_utc", "hazard", "town_code"], kind="stable")
    rows = []
    for r in cases.to_dict("records"):
        target = "" if pd.isna(r.get("lead_target_min")) else _minutes(r["lead_target_min"], lang)
        met = r.get("lead_met")
        if met is not None and not pd.isna(met):
            target += " ✓" if bool(met) else " ✗"
        rows.append(
            [
                html.escape(units.get(r["town_code"], r["town_code"])),
                html.escape(names.get(r["hazard"], r["hazard"])),
                format_local(r["window_start_utc"], "%m-%d"),
                _badge(r["warned_level"], lang),
                _badge(r["observed_level"], lang),
                t(f"outcome_{r['outcome']}", lang),
                format_local(r["first_warning_utc"], _FMT),
                format_local(r["observed_onset_utc"], _FMT),
                _minutes(r["lead_time_min"], lang),
                target,
            ]
        )
    head = [
        t(k, lang)
        for k in (
            "col_unit",
            "col_hazard",
            "col_window",
            "col_warned",
            "col_observed",
            "col_outcome",
            "col_first_warning",
            "col_observed_onset",
            "col_lead_time",
            "col_target",
        )
    ]
    return _table(head, rows)


def _unit_max(frame: pd.DataFrame, column: str) -> dict[str, int]:
    if frame.empty:
        return {}
    levels = pd.to_numeric(frame[column], errors="coerce").fillna(0)
    return levels.groupby(frame["town_code"].astype(str)).max().astype(int).to_dict()


def level_maps(review, *, lang: str = "zh", figsize=(9.0, 4.2)) -> Figure:
    """Two maps of the units: highest level warned and highest level observed."""
    configure_cjk_font()
    juris = review.inputs.jurisdiction
    colours = level_colours()
    warned = _unit_max(review.cases, "warned_level")
    observed = _unit_max(review.cases[review.cases["evaluated"].astype(bool)], "observed_level")
    fig = Figure(figsize=figsize, dpi=110, layout="constrained")
    axes = fig.subplots(1, 2)
    lon0, lat0, lon1, lat1 = juris.bounds
    for ax, levels, key in ((axes[0], warned, "map_warned"), (axes[1], observed, "map_observed")):
        for unit in sorted(
            (u for u in juris.units if u.has_geometry), key=lambda u: u.kind != "town"
        ):
            level = levels.get(unit.code)
            ax.add_patch(
                _geom_patch(
                    unit.geometry,
                    facecolor=colours[level] if level else "#F4F4F4",
                    edgecolor="#333333",
                    lw=0.7,
                    ls="-" if unit.kind == "town" else "--",
                )
            )
        ax.add_patch(_geom_patch(juris.outline, facecolor="none", edgecolor="#111111", lw=1.4))
        ax.set_xlim(lon0 - 0.05, lon1 + 0.05)
        ax.set_ylim(lat0 - 0.05, lat1 + 0.05)
        ax.set_aspect(1 / np.cos(np.deg2rad((lat0 + lat1) / 2)))
        ax.set_title(t(key, lang), fontsize=10)
        ax.tick_params(labelsize=7)
    handles = [
        axes[1].scatter([], [], marker="s", s=50, color=c, label=level_label(i, lang))
        for i, c in enumerate(colours)
        if i > 0
    ]
    axes[1].legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.9)
    return fig


def timeline_figure(review, *, lang: str = "zh", max_rows: int = 16) -> Figure:
    """The event on one time axis: forecast runs, warnings, observed onsets and tasks.

    One row per unit × hazard with an event (hit, miss or false alarm): warnings as bars from
    issue to expiry in their level colour, the observed onset as a diamond in the observed
    level's colour, tasks of that unit and hazard as ticks (dispatch ▲, on site ●, resolved ■).
    Forecast runs (warning issue times) are dashed vertical lines. Beijing time.
    """
    configure_cjk_font()
    names, units = _hazard_names(review, lang), _unit_names(review, lang)
    colours = level_colours()
    events = review.cases[review.cases["outcome"].isin(_EVENTS)]
    keys = (
        events.groupby(["town_code", "hazard"])["observed_level"]
        .max()
        .sort_values(ascending=False)
        .index.tolist()[:max_rows]
    )
    height = 1.2 + 0.32 * max(len(keys), 1)
    fig = Figure(figsize=(9.0, height), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    end_local = _local([review.end])[0]
    for i, (code, hazard) in enumerate(keys):
        y = len(keys) - 1 - i
        w = review.warnings[
            (review.warnings["town_code"] == code) & (review.warnings["hazard"] == hazard)
        ]
        for r in w.to_dict("records"):
            if int(r["level"]) < 1:
                continue
            start = _local([r["issued_utc"]])[0]
            stop = _local([r["expires_utc"]])[0] if not pd.isna(r["expires_utc"]) else end_local
            ax.barh(y, stop - start, left=start, height=0.5, color=colours[int(r["level"])],
                    alpha=0.55, edgecolor="#555555", lw=0.4)  # fmt: skip
        obs = events[(events["town_code"] == code) & (events["hazard"] == hazard)]
        for r in obs.to_dict("records"):
            if pd.isna(r["observed_onset_utc"]):
                continue
            ax.plot(_local([r["observed_onset_utc"]])[0], y, "D", ms=7,
                    color=colours[int(r["observed_level"])], mec="#000000", mew=0.8)  # fmt: skip
        if review.timeline is not None and not review.timeline.empty:
            tl = review.timeline
            tasks = tl[(tl["town_code"] == code) & (tl["hazard"] == hazard)]
            for col, marker in (
                ("dispatched_utc", "^"),
                ("on_site_utc", "o"),
                ("resolved_utc", "s"),
            ):
                times = tasks[col].dropna()
                if len(times):
                    ax.plot(_local(times.values), [y - 0.3] * len(times), marker, ms=3,
                            color="#333333", alpha=0.6, ls="none")  # fmt: skip
    for issued in sorted(review.warnings["issued_utc"].dropna().unique()):
        ax.axvline(_local([issued])[0], color="#777777", ls="--", lw=0.7)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels(
        [f"{units.get(c, c)} {names.get(h, h)}" for c, h in reversed(keys)],
        fontsize=8,
        parse_math=False,  # names are data: "$" is not mathtext
    )
    ax.set_xlim(_local([review.start])[0], end_local)
    ax.set_xlabel(t("times_note", lang), fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(t("review_sec_timeline", lang), fontsize=10)
    import matplotlib.dates as mdates

    ax.xaxis.set_major_formatter(
        mdates.DateFormatter("%m-%d %H时" if lang == "zh" else "%d %b %H:%M")
    )
    return fig


def response_html(review, *, lang: str = "zh") -> str:
    """Closure per loop, times, overdue and escalated tasks, rescue and relief targets."""
    if review.response is None:
        return f"<p style='color:#777'>{html.escape(t('no_ledger', lang))}</p>"
    r = review.response
    totals = r["tasks"]
    rows = [
        [t(f"loop_{loop}", lang), str(v["tasks"]), str(v["closed"]), _num(v["closure_rate"], "{:.0%}")]
        for loop, v in r["closure_by_loop"].items()
    ]  # fmt: skip
    rows.append(
        [t("map_all", lang), str(totals["total"]), str(totals["closed"]),
         _num(totals["closure_rate"], "{:.0%}")]
    )  # fmt: skip
    out = [
        _table([t(k, lang) for k in ("loop", "tasks_total", "tasks_closed", "closure_rate")], rows)
    ]
    med = r.get("median_minutes", {})
    facts = [
        (t("tasks_open", lang), str(totals["still_open"])),
        (t("tasks_overdue", lang), str(totals["overdue"])),
        (t("tasks_escalated", lang), str(totals["escalated"])),
        (t("median_dispatch", lang), _minutes(med.get("to_dispatch"), lang)),
        (t("median_on_site", lang), _minutes(med.get("to_on_site"), lang)),
    ]
    for key, label in (
        ("rescue_on_scene_2h", "target_rescue"),
        ("initial_relief_10h", "target_relief"),
    ):
        if key in r:
            v = r[key]
            met = (
                ""
                if v.get("met") is None
                else t("target_met" if v["met"] else "target_not_met", lang)
            )
            facts.append(
                (t(label, lang),
                 f"{_num(v.get('share'), '{:.0%}')}（{v.get('within')}/{v.get('incidents')}），"
                 f"{v.get('target_op', '')}{_num(v.get('target'), '{:.0%}')} {met}")
            )  # fmt: skip
    if "four_ones" in r:
        v = r["four_ones"]["all_four"]
        facts.append(
            (t("four_ones", lang), f"{v['count']}/{v['of']}（{_num(v['share'], '{:.0%}')}）")
        )
    out.append(_table(["", ""], [[html.escape(a), html.escape(b)] for a, b in facts]))
    out.append(_escalations_html(review, lang))
    out.append(_report_clocks_html(review, lang))
    return "\n".join(out)


def _report_clocks_html(review, lang: str) -> str:
    """Incident report clocks (001:12, 002:1594): due, reported, on time, late or overdue."""
    clocks = getattr(review, "report_clocks", None)
    if clocks is None or clocks.empty:
        return ""
    units = _unit_names(review, lang)
    rows = []
    for r in clocks.to_dict("records"):
        if r["overdue"]:
            verdict = f"<b style='color:#c00'>{html.escape(t('clock_overdue', lang))}</b>"
        elif r["late"]:
            verdict = f"<b style='color:#c60'>{html.escape(t('clock_late', lang))}</b>"
        elif r["reported_utc"]:
            verdict = html.escape(t("clock_on_time", lang))
        else:
            verdict = html.escape(t("clock_open", lang))
        rows.append(
            [html.escape(str(r["incident_id"])),
             html.escape(units.get(str(r["town_code"]), str(r["town_code"]) or "—")),
             html.escape(t(f"incident_{r['kind']}", lang)),
             html.escape(t(f"scale_{r['scale']}", lang)),
             html.escape(f"{r['channel']} → {r['report_to']}"),
             format_local(r["due_utc"], "%m-%d %H:%M"),
             format_local(r["reported_utc"], "%m-%d %H:%M") if r["reported_utc"] else "—",
             verdict, html.escape(str(r["source"]))]
        )  # fmt: skip
    head = [t(k, lang) for k in ("clock_incident", "col_unit", "clock_kind", "clock_scale",
                                 "clock_to", "clock_due", "clock_reported", "clock_verdict",
                                 "clock_source")]  # fmt: skip
    return f"<h4>{html.escape(t('clock_title', lang))}</h4>" + _table(head, rows)


def _escalations_html(review, lang: str) -> str:
    """The escalated tasks: who, what, when and which follow-up rule (plan/timing.yaml)."""
    tl = review.timeline
    if tl is None or tl.empty or not (tl["escalated"] > 0).any():
        return ""
    from cityops.response.plan import load_plan

    plan = load_plan(review.inputs.jurisdiction_ref)
    texts = {r["id"]: r.get(f"text_{lang}") or r["id"] for r in plan.timing["followup"]}
    measures = {m.id: (m.text_zh if lang == "zh" else m.text_en) for m in plan.measures}
    units = _unit_names(review, lang)
    rows = []
    for r in tl[tl["escalated"] > 0].sort_values("escalated_utc").to_dict("records"):
        rules = [texts.get(x, x) for x in str(r["escalation_rules"]).split(", ") if x]
        rows.append(
            [html.escape(units.get(str(r["town_code"]), str(r["town_code"]))),
             html.escape(str(r["lead_unit"])),
             html.escape(measures.get(str(r["measure"]), str(r["measure"]))),
             format_local(r["escalated_utc"], "%m-%d %H:%M"), f"×{int(r['escalated'])}",
             html.escape("；".join(rules)), html.escape(t(f"state_{r['state']}", lang))]
        )  # fmt: skip
    head = [t(k, lang) for k in ("col_unit", "esc_lead", "esc_measure", "esc_time",
                                 "esc_times", "esc_rule", "esc_state")]  # fmt: skip
    return f"<h4>{html.escape(t('esc_title', lang))}</h4>" + _table(head, rows)


def safety_html(review, *, lang: str = "zh") -> str:
    """The safe-operation index: every component's raw value and sub-score, then the total."""
    if review.safety is None or review.safety.empty:
        return f"<p style='color:#777'>{html.escape(t('no_records', lang))}</p>"
    frame = review.safety
    units = _unit_names(review, lang)
    comps = frame.attrs.get("components") or []
    ids = [c["id"] if isinstance(c, dict) else c for c in comps] or sorted(
        c.removesuffix("_score") for c in frame.columns if c.endswith("_score")
    )
    labels = []
    for c in comps or ids:
        if isinstance(c, dict):
            labels.append(c.get(f"name_{lang}") or c.get("name_zh") or c["id"])
        else:
            labels.append(c)
    rows = []
    for r in frame.to_dict("records"):
        cells = [html.escape(units.get(str(r["town_code"]), str(r["town_code"])))]
        for cid in ids:
            raw, score = r.get(f"{cid}_raw"), r.get(f"{cid}_score")
            cells.append(f"{_num(raw, '{:g}')} → {_num(score, '{:.0f}')}")
        cells.append(f"<b>{_num(r.get('total'), '{:.0f}')}</b>")
        rows.append(cells)
    head = [t("col_unit", lang), *map(html.escape, map(str, labels)), t("col_total", lang)]
    weights = " · ".join(
        f"{html.escape(str(label))} ×{_num(frame[f'{cid}_weight'].iloc[0], '{:.2f}')}"
        for cid, label in zip(ids, labels, strict=True)
        if f"{cid}_weight" in frame
    )
    return _table(head, rows) + f"<p style='color:#555;font-size:0.85em'>{weights}</p>"


def findings_html(review, *, lang: str = "zh") -> str:
    """Structured findings: category, finding, owner, plan row or threshold, proposed change."""
    from cityops.review.cases import category_label

    rows = []
    for r in review.findings.to_dict("records"):
        rows.append(
            [
                html.escape(category_label(r["category"], lang)),
                html.escape(str(r.get("finding", ""))),
                html.escape(str(r.get("owner", ""))),
                f"<code>{html.escape(str(r.get('target', '')))}</code>",
                html.escape(str(r.get("proposed_change", ""))),
            ]
        )
    head = [t(k, lang) for k in ("finding_category", "finding_text", "finding_owner",
                                 "finding_target", "finding_change")]  # fmt: skip
    return _table(head, rows)


def library_html(library_dir, *, lang: str = "zh", exclude: str | None = None) -> str:
    """Earlier reviews in the case library (newest first)."""
    from cityops.review.cases import list_cases

    frame = list_cases(library_dir) if Path(library_dir).exists() else pd.DataFrame()
    if exclude is not None and not frame.empty:
        frame = frame[frame["case_id"] != exclude]
    if frame.empty:
        return f"<p style='color:#777'>{html.escape(t('no_earlier_cases', lang))}</p>"
    cols = [c for c in frame.columns if c in ("case_id", "title", "period_start_utc", "status",
                                              "findings", "saved_utc")]  # fmt: skip
    rows = [[html.escape(str(r[c])) for c in cols] for r in frame.to_dict("records")]
    return _table(cols, rows)


def data_html(review, *, lang: str = "zh") -> str:
    """Inputs, rule set, window and status."""
    items = [
        (
            t("inputs_forecast", lang),
            ", ".join(Path(p).name for p in _split(review.inputs.forecast)),
        ),
        (
            t("inputs_observed", lang),
            ", ".join(Path(p).name for p in _split(review.inputs.observed)),
        ),
        (t("ruleset", lang), str(review.inputs.rules)),
        (t("review_window", lang), str(review.inputs.window)),
        (t("review_status", lang), t(f"status_{review.status}", lang)),
    ]
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in items
    )
    return f'<table style="font-size:0.85em" cellpadding="3">{body}</table>'


def _split(value) -> list[str]:
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return [str(p) for p in value]
