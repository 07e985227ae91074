"""Building blocks of the per-town briefing notebook (``templates/town_briefing.ipynb``).

The template stays thin: a parameters cell, :func:`validate_parameters`, then one call per
section. Everything returns HTML strings or figures so the same pieces serve the batch, the
notebook and tests.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import pandas as pd

from cityops.errors import InputError
from cityops.i18n import check_lang, level_label, t, tier_label
from cityops.rules.table import display_units, level_names
from cityops.timeutil import format_local, parse_utc

__all__ = [
    "assets_html",
    "collect_parameters",
    "data_section_html",
    "duty_html",
    "extreme_criteria_text",
    "figure_display",
    "figure_png",
    "hazard_table_html",
    "headline_html",
    "headline_text",
    "output_path",
    "periods_html",
    "response_html",
    "response_plan_text",
    "risk_summary_html",
    "section_html",
    "title_html",
    "unit_rows",
    "validate_parameters",
]

BRIEFING_PARAMETERS = {
    "forecast": str,
    "town": str,
    "jurisdiction": str,
    "rules": str,
    "now": str,
    "lang": str,
    "output_dir": str,
    "report_probability": float,
    "mapping": str,
    "observed": str,
    "history": str,
    "run": str,
}


def validate_parameters(**params) -> dict:
    """Check the briefing template's parameters; raise one readable :class:`InputError`.

    Unknown names, wrong types, missing forecast files, unknown towns and languages are
    rejected here, in the second cell, rather than deep in the notebook.
    """
    unknown = sorted(set(params) - set(BRIEFING_PARAMETERS))
    if unknown:
        raise InputError(
            f"unknown parameter(s) {', '.join(unknown)}; expected {', '.join(BRIEFING_PARAMETERS)}"
        )
    out = {}
    for name, kind in BRIEFING_PARAMETERS.items():
        value = params.get(name)
        if value is None or value == "":
            out[name] = (
                None
                if name in ("now", "output_dir", "mapping", "observed", "history", "run")
                else value
            )
            continue
        if kind is float and isinstance(value, int | float):
            value = float(value)
        if not isinstance(value, kind):
            raise InputError(f"parameter {name}: expected {kind.__name__}, got {value!r}")
        out[name] = value
    if not out.get("forecast"):
        raise InputError("parameter forecast: a forecast file is required")
    for path in str(out["forecast"]).split(","):
        if not any(ch in path for ch in "*?[") and not Path(path.strip()).exists():
            raise InputError(f"parameter forecast: file {path.strip()} not found")
    check_lang(out["lang"] or "zh")
    if out["now"]:
        parse_utc(out["now"], what="parameter now")
    if not 0 < (out.get("report_probability") or 0.3) <= 1:
        raise InputError("parameter report_probability: expected a share in (0, 1]")
    from cityops.geo.jurisdiction import load_jurisdiction

    juris = load_jurisdiction(out["jurisdiction"] or "ejin-horo")
    out["town"] = juris.unit(out["town"]).code  # resolves names and aliases, or fails clearly
    out["forecast"] = [p.strip() for p in str(out["forecast"]).split(",")]
    out["observed"] = [p.strip() for p in out["observed"].split(",")] if out["observed"] else None
    if out["run"] and not (Path(out["run"]) / "state.json").is_file():
        raise InputError(
            f"parameter run: {out['run']} holds no run state (expected a `cityops brief` "
            "run's state/ folder, or empty to assess the forecast)"
        )
    return out


def assessment_for(params: dict):
    """The unit's assessment, from the validated parameters (:func:`validate_parameters`).

    With ``run`` (what ``cityops brief`` passes), the assessment the run made, read from its
    state folder (:mod:`cityops.run_state`; once per kernel), after checking that the other
    parameters name the same inputs; without it, the forecast is assessed here.
    """
    if params.get("run"):
        from cityops.run_state import check_same_inputs, read_run_state

        assessment = read_run_state(params["run"])
        check_same_inputs(assessment, _assess_inputs(params))
        if str(assessment.jurisdiction.code) != str(_jurisdiction(params).code):
            raise InputError(
                f"parameter run: the run is for {assessment.jurisdiction.name}, not "
                f"{params['jurisdiction']}"
            )
        return assessment
    from cityops.pipeline import assess

    return assess(
        params["forecast"], jurisdiction=params["jurisdiction"], rules=params["rules"],
        now=params["now"], report_probability=params["report_probability"],
        mapping=params["mapping"], observed=params["observed"], history=params["history"],
    )  # fmt: skip


def _assess_inputs(params: dict) -> dict:
    """The notebook parameters that are arguments of ``assess``."""
    keys = ("forecast", "rules", "now", "report_probability", "mapping", "observed", "history")
    return {k: params.get(k) for k in keys}


def _jurisdiction(params: dict):
    from cityops.geo.jurisdiction import load_jurisdiction

    return load_jurisdiction(params["jurisdiction"] or "ejin-horo")


def collect_parameters(namespace: dict) -> dict:
    """The parameters a notebook ended up with: its globals minus IPython's own names,
    modules and callables (so a misspelt injected parameter is caught as unknown)."""
    skip = {"In", "Out", "get_ipython", "exit", "quit", "open"}
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_")
        and k not in skip
        and not callable(v)
        and type(v).__name__ != "module"
    }


def output_path(params: dict, name: str) -> Path | None:
    """``output_dir/name`` when the notebook was given an output folder."""
    folder = params.get("output_dir")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / name


def title_html(assessment, code: str, *, lang: str = "zh") -> str:
    """The briefing's title: unit and jurisdiction."""
    juris = assessment.jurisdiction
    name = _unit_name(assessment, code, lang)
    sub = juris.name_zh if lang == "zh" else juris.name_en
    # A drill shows as a drill at the top of every page people forward, not only at the end.
    banner = (
        "<div style='background:#5b2c83;color:#fff;font-weight:bold;padding:6px 10px;"
        f"margin-bottom:6px'>{html.escape(t('exercise_banner', lang))}</div>"
        if assessment.is_exercise
        else ""
    )
    tag = t("exercise_tag", lang) if assessment.is_exercise else ""
    return (
        f"{banner}<h1 style='margin-bottom:2px'>"
        f"{html.escape(tag + t('briefing_title', lang, unit=name))}</h1>"
        f"<div style='color:#555'>{html.escape(sub)}</div>"
    )


def duty_html(assessment, *, lang: str = "zh") -> str:
    """Who is on duty at the briefing's reference time (duty officer, leader on duty, phone),
    from the jurisdiction's ``duty.yaml``; says so when there is no roster (see
    :mod:`cityops.response.duty`)."""
    from cityops.response import duty

    lines = duty.jurisdiction_duty_lines(assessment.jurisdiction, assessment.now, lang=lang)
    return duty.duty_html(lines)


def extreme_criteria_text(jurisdiction, *, lang: str = "zh") -> str:
    """The jurisdiction's own extreme-weather criteria by name, or the plain sentence that it
    has none (then only the national signal levels apply): ``jurisdiction.yaml``
    ``extreme_criteria``."""
    criteria = jurisdiction.extreme_criteria
    return t("extreme_none", lang) if criteria is None else criteria.name(lang)


def response_plan_text(jurisdiction, *, lang: str = "zh") -> str:
    """The jurisdiction's response plan by name; or that it has none, or that its response
    tables are not loaded (no posture, no tasks): ``jurisdiction.yaml`` ``response_plan``."""
    plan = jurisdiction.response_plan
    if plan is None:
        return t("plan_none", lang)
    name = plan.name(lang) or str(plan.folder)
    return name if plan.loaded else t("plan_not_loaded", lang, plan=name)


def section_html(key: str, *, lang: str = "zh") -> str:
    """A section heading in the report language."""
    from cityops.i18n import _catalog

    return f"<h2>{html.escape(_catalog()[check_lang(lang)]['sections'][key])}</h2>"


def unit_rows(assessment, code: str) -> pd.DataFrame:
    """The unit's rows of the town table, most severe first (then earliest onset)."""
    frame = assessment.table
    rows = frame[frame["town_code"] == code].copy()
    rows["_onset"] = rows["onset_utc"].replace("", "9999")
    return rows.sort_values(["level", "_onset"], ascending=[False, True]).drop(columns="_onset")


def _unit_name(assessment, code: str, lang: str) -> str:
    unit = assessment.jurisdiction.unit(code)
    return unit.name_zh if lang == "zh" else unit.name_en


def _assessed(rows: pd.DataFrame) -> pd.Series:
    return rows["evaluated"].astype(bool) if len(rows) else pd.Series([], dtype=bool)


def unit_assessed(assessment, code: str) -> bool:
    """Whether any hazard of the unit could be assessed (else nothing may read as safe)."""
    return bool(_assessed(unit_rows(assessment, code)).any())


def headline_text(assessment, code: str, *, lang: str = "zh") -> str:
    """One sentence: the highest level, its hazard, when (Beijing time) and the share of the
    unit's area; no warning weather only for what was assessed; "cannot be assessed" when
    nothing was (a unit that could not be assessed never reads as safe)."""
    rows = unit_rows(assessment, code)
    name = _unit_name(assessment, code, lang)
    unit = assessment.jurisdiction.unit(code)
    assessed = _assessed(rows)
    if not assessed.any():
        reasons = [localize_note(str(n), lang) for n in rows["note"].fillna("") if n]
        reason = reasons[0] if reasons else t("not_evaluated", lang)
        return t("headline_unassessed", lang, unit=name, reason=reason)
    done = rows[assessed]
    top = done.iloc[0]
    if int(top["level"]) == 0:
        hours = (
            int(
                (assessment.forecast["time"].values[-1] - assessment.forecast["time"].values[0])
                / pd.Timedelta("1h")
            )
            + 1
        )
        text = t("headline_none", lang, unit=name, hours=hours)
        missing = rows[~assessed]
        if len(missing):
            names = missing["hazard_name_zh"] if lang == "zh" else missing["hazard_name_en"]
            text += t(
                "headline_partly",
                lang,
                n=len(missing),
                hazards=("、" if lang == "zh" else ", ").join(names.astype(str)),
            )
    else:
        fmt = "%m月%d日%H时" if lang == "zh" else "%d %b %H:%M"
        # Every hazard at the top level, in order of onset ("暴雨、雷电").
        same = done[done["level"] == top["level"]]
        names = same["hazard_name_zh"] if lang == "zh" else same["hazard_name_en"]
        hazard = ("、" if lang == "zh" else ", ").join(names)
        text = t(
            "headline",
            lang,
            unit=name,
            when=format_local(top["onset_utc"], fmt),
            hazard=hazard,
            level=level_label(int(top["level"]), lang),
        )
        share = pd.to_numeric(same["area_fraction"], errors="coerce").max()
        if pd.notna(share):
            kinds = t("unit_kind", lang)
            text += t(
                "headline_area",
                lang,
                kind=kinds.get(unit.kind, kinds["town"]),
                pct=f"{max(1, round(float(share) * 100)):d}" if share > 0 else "0",
            )
    if unit.seat_disc:
        text += t("headline_disc", lang, km=f"{assessment.jurisdiction.policy.seat_disc_km:g}")
    return text


def localize_note(note: str, lang: str = "zh") -> str:
    """Engine notes (English, as in the CSV) in the report language."""
    import re

    if lang != "zh" or not note:
        return note
    from cityops.i18n import _catalog

    for pattern, repl in _catalog()["note_patterns_zh"]:
        note = re.sub(pattern, repl, note)
    for en, zh in (("orange", "橙"), ("red", "红"), ("yellow", "黄"), ("blue", "蓝")):
        note = note.replace(f"国家{en}级", f"国家{zh}色").replace(f"为{en}色", f"为{zh}色")
    return note


def _badge(level: int, lang: str) -> str:
    colour = level_names()[int(level)]["colour"]
    fg = "#000" if int(level) in (0, 2) else "#fff"
    return (
        f'<span style="background:{colour};color:{fg};padding:1px 8px;border-radius:3px;'
        f'border:1px solid #999;white-space:nowrap">{html.escape(level_label(level, lang))}</span>'
    )


def headline_html(assessment, code: str, *, lang: str = "zh") -> str:
    """The headline box: highest level, hazard, when, and the jurisdiction's own extreme
    flag (or the plain note that it has no extreme criteria of its own)."""
    rows = unit_rows(assessment, code)
    level = int(rows["level"].max()) if len(rows) else 0
    # Nothing assessed is grey, never the green of "no warning weather".
    colour = (
        level_names()[level]["colour"]
        if level
        else ("#DDEEDD" if unit_assessed(assessment, code) else "#AAAAAA")
    )
    extreme = bool(rows["extreme"].any()) if len(rows) else False
    criteria = assessment.jurisdiction.extreme_criteria
    extra = ""
    if criteria is None:
        extra = (
            '<div style="margin-top:4px;font-size:0.75em;color:#555">'
            f"{html.escape(t('extreme_none', lang))}</div>"
        )
    elif extreme:
        flag = t("extreme_flag", lang, criteria=criteria.name(lang))
        extra = f'<div style="margin-top:4px;font-weight:bold">⚠ {html.escape(flag)}</div>'
    issued = format_local(assessment.issued, "%Y-%m-%d %H:%M")
    return (
        f'<div style="border-left:10px solid {colour};background:#fafafa;padding:10px 14px;'
        f'font-size:1.15em;max-width:900px">'
        f"<div>{html.escape(headline_text(assessment, code, lang=lang))}</div>{extra}"
        f'<div style="font-size:0.75em;color:#555;margin-top:6px">{t("issued", lang)}: {issued}'
        f" · {t('times_note', lang)}</div></div>"
    )


def hazard_table_html(assessment, code: str, *, lang: str = "zh") -> str:
    """The hazard table with level colours, onset, issue-by, peak, tier and the extreme flag
    of the jurisdiction's own criteria ("n/a" when it has none)."""
    rows = unit_rows(assessment, code)
    own_criteria = assessment.jurisdiction.extreme_criteria is not None
    fmt = "%m-%d %H:%M"
    head = [
        t(k, lang)
        for k in (
            "hazard",
            "level",
            "proposal",
            "onset",
            "issue_by",
            "peak",
            "peak_time",
            "tier",
            "area",
            "extreme",
            "criterion",
        )
    ]
    if rows["probability"].notna().any():
        head.insert(9, t("probability", lang))
    # Inline styles: the notebook's HTML template right-aligns table cells.
    cell = 'style="text-align:left;vertical-align:top"'
    out = [
        '<table style="border-collapse:collapse;font-size:0.9em" border="1" cellpadding="4">',
        "<tr>" + "".join(f"<th {cell}>{h}</th>" for h in head) + "</tr>",
    ]
    for _, r in rows.iterrows():
        hazard = r["hazard_name_zh"] if lang == "zh" else r["hazard_name_en"]
        if not bool(r["evaluated"]):
            out.append(
                f"<tr><td {cell}>{html.escape(str(hazard))}</td><td colspan='{len(head) - 1}' "
                f"style='color:#777;text-align:left'>{t('not_evaluated', lang)}: {html.escape(_not_evaluated_reason(assessment, r, lang))}</td></tr>"
            )
            continue
        peak = (
            "" if pd.isna(r["peak_value"]) else f"{r['peak_value']:g} {display_units(r['units'])}"
        )
        extreme = t("word_yes", lang) if bool(r["extreme"]) else t("word_no", lang)
        if not own_criteria:
            extreme = t("extreme_na", lang)
        if bool(r["extreme"]) and r["national_level_of_extreme"]:
            extreme += f" ({level_label(['none', 'blue', 'yellow', 'orange', 'red'].index(r['national_level_of_extreme']), lang)})"
        cells = [
            html.escape(str(hazard)),
            _badge(int(r["level"]), lang),
            _proposal_cell(r, lang),
            format_local(r["onset_utc"], fmt) if r["onset_utc"] else "",
            format_local(r["issue_by_utc"], fmt) if r["issue_by_utc"] else "",
            peak,
            format_local(r["peak_time_utc"], fmt) if r["peak_time_utc"] else "",
            tier_label(r["tier"], lang),
            f"{100 * float(r['area_fraction']):.0f}%" if int(r["level"]) else "",
            extreme,
            html.escape(_criterion(assessment, r, lang)),
        ]
        if len(head) == 12:
            prob = "" if pd.isna(r["probability"]) else f"{100 * float(r['probability']):.0f}%"
            cells.insert(9, prob)
        out.append("<tr>" + "".join(f"<td {cell}>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _proposal_cell(row, lang: str) -> str:
    """What the run proposes to issue now, and when the next level falls due (issue 18 item 2):
    a signal is proposed once its issue-by time is reached; later levels are an outlook."""
    level = int(row["level"])
    if not level:
        return ""
    proposed = row.get("proposed_level")
    proposed = 0 if proposed is None or pd.isna(proposed) else int(proposed)
    parts = [_badge(proposed, lang) if proposed else html.escape(t("proposal_none", lang))]
    due, nxt = row.get("next_due_utc"), row.get("next_level")
    if isinstance(due, str) and due and nxt is not None and not pd.isna(nxt):
        parts.append(html.escape(t("next_due", lang).format(
            time=format_local(due, "%m-%d %H:%M"), level=level_label(int(nxt), lang))))  # fmt: skip
    return "<br>".join(parts)


def _not_evaluated_reason(assessment, row, lang: str) -> str:
    """Why a row was not evaluated, in the report language."""
    rules = assessment.levels[row["hazard"]].rules
    if lang == "zh" and rules.requires and rules.extra.get("requires_note_zh"):
        missing = [r for r in rules.requires if r not in assessment.forecast.attrs
                   and r not in assessment.forecast.data_vars]  # fmt: skip
        if missing:
            return rules.extra["requires_note_zh"]
    return localize_note(str(row["note"]), lang)


def _criterion(assessment, row, lang: str) -> str:
    """The criterion of the row's level (or of the lowest level) in the report language:
    the rule's criteria, or its proxy (marked) when the criteria lacked inputs."""
    from cityops.rules.engine import _uses_proxy

    res = assessment.levels[row["hazard"]]
    level = int(row["level"]) or min(res.conditions, default=0)
    rule = res.rules.level_rule(level)
    if rule is None:
        return ""
    results = res.conditions.get(level, [])
    proxy = _uses_proxy(rule, results)
    group = rule.proxy if proxy else rule.criteria
    joiner = {"zh": {"any": "或", "all": "且"}, "en": {"any": " or ", "all": " and "}}[lang]

    def text(g) -> str:
        parts = [text(i) if hasattr(i, "items") else i.describe(lang) for i in g.items]
        out = joiner[g.mode].join(parts)
        return f"（{out}）" if g is not group and len(parts) > 1 else out

    label = ("（代用指标）" if lang == "zh" else " (proxy)") if proxy else ""
    return text(group) + label


def data_section_html(assessment, *, lang: str = "zh") -> str:
    """Source files, issue time, ingest history, rule set, rows not evaluated and why."""
    ds = assessment.forecast
    items = [
        (t("source_files", lang), ", ".join(Path(s).name for s in assessment.sources)),
        (t("issued", lang), format_local(assessment.issued, "%Y-%m-%d %H:%M") + " (UTC+8)"),
        (t("reference_time", lang), format_local(assessment.now, "%Y-%m-%d %H:%M") + " (UTC+8)"),
        (
            t("ruleset", lang),
            f"{assessment.levels.table.title_zh if lang == 'zh' else assessment.levels.table.title_en}"
            f" v{assessment.levels.table.version}",
        ),
        (t("extreme_criteria", lang), extreme_criteria_text(assessment.jurisdiction, lang=lang)),
        (t("response_plan", lang), response_plan_text(assessment.jurisdiction, lang=lang)),
    ]
    if ds.attrs.get("cityops_scenario"):
        items.append(
            (
                t("scenario_label", lang),
                f"{ds.attrs['cityops_scenario']} · {t('status_exercise', lang)}",
            )
        )
    history = ds.attrs.get("history", "")
    notes = [
        f"{r.rules.name(lang)}: {localize_note('; '.join(r.notes), lang)}"
        for r in assessment.levels
        if r.notes
    ]
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in items
    )
    body += f"<tr><th style='text-align:left'>{t('ingest_history', lang)}</th><td style='text-align:left'><pre style='white-space:pre-wrap'>{html.escape(history)}</pre></td></tr>"
    if notes:
        body += f"<tr><th style='text-align:left'>{t('notes', lang)}</th><td style='text-align:left'>{'<br>'.join(map(html.escape, notes))}</td></tr>"
    return f'<table style="font-size:0.85em" cellpadding="3">{body}</table>'


def figure_display(fig, path: str | Path | None = None):
    """An IPython image of a figure (PNG, embedded in the HTML), or a note when ``fig`` is
    None (e.g. a unit without geometry has no meteogram)."""
    from IPython.display import HTML, Image

    if fig is None:
        return HTML("<p style='color:#777'>—</p>")
    return Image(figure_png(fig, path))


def figure_png(fig, path: str | Path | None = None) -> bytes:
    """Render a matplotlib figure to PNG bytes (and to ``path`` if given)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _simple_table(head: list[str], rows: list[list[str]], lang: str) -> str:
    cell = 'style="text-align:left;vertical-align:top"'
    if not rows:
        return f"<p style='color:#555'>{t('none_listed', lang)}</p>"
    out = [
        '<table style="border-collapse:collapse;font-size:0.9em" border="1" cellpadding="4">',
        "<tr>" + "".join(f"<th {cell}>{html.escape(h)}</th>" for h in head) + "</tr>",
    ]
    for r in rows:
        out.append("<tr>" + "".join(f"<td {cell}>{c}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def risk_summary_html(assessment, code: str, *, lang: str = "zh") -> str:
    """The unit's ordered risk list: hazard, level, when, what it threatens, special
    conditions and the attention level they give."""
    from cityops.geo.summary import risk_summary

    summary = risk_summary(assessment, code)
    fmt = "%m-%d %H:%M"
    rows = []
    for _, r in summary.iterrows():
        hazard = r["hazard_name_zh"] if lang == "zh" else r["hazard_name_en"]
        when = format_local(r["onset_utc"], fmt)
        if r["end_utc"]:
            when += f"—{format_local(r['end_utc'], fmt)}"
        rows.append([
            html.escape(hazard), _badge(r["level"], lang), when,
            html.escape(r["threatens"]), html.escape(r["special_conditions"]),
            _badge(r["attention_level"], lang), html.escape(r["extra_owners"]),
        ])  # fmt: skip
    head = [t(k, lang) for k in ("hazard", "level", "when", "threatens", "special", "attention",
                                 "owners")]  # fmt: skip
    return _simple_table(head, rows, lang)


def assets_html(assessment, code: str, *, lang: str = "zh") -> str:
    """Triggered exposure points of the unit with their own plans (一点一策), and the register
    fields ``assets.yaml`` marks ``brief: true`` (e.g. risk level, supervising department)."""
    assets = assessment.assets
    rows = []
    shown = []
    if assets is not None and not assets.empty:
        shown = [f for f in assets.attrs.get("register_fields") or () if f.get("brief")]
        sub = assets[assets["unit"].astype(str) == code].sort_values("first_time_utc")
        for _, a in sub.drop_duplicates(["asset_id", "hazard"]).iterrows():
            peak = f"{a['peak_value']:g} {display_units(str(a['units']))}"
            rows.append([
                html.escape(str(a["name_zh"])), format_local(a["first_time_utc"], "%m-%d %H:%M"),
                html.escape(str(a["trigger_zh"] if lang == "zh" else a["trigger"]))
                + (f"（{peak}）" if lang == "zh" else f" ({peak})"),
                html.escape(str(a["plan_zh"])),
                html.escape(str(a["owner"])),
            ])  # fmt: skip
            if shown:
                sep = "：" if lang == "zh" else ": "
                rows[-1].append("<br>".join(
                    html.escape(f"{f['label_zh' if lang == 'zh' else 'label_en']}{sep}{a[f['column']]}")
                    for f in shown))  # fmt: skip
    head = [t(k, lang) for k in ("asset", "trigger_time", "criterion", "plan", "owner")]
    if shown:
        head.append(t("register_info", lang))
    note = ""
    if assets is not None and not assets.empty and bool(assets["illustrative"].astype(str).eq("True").any()
                                                        or assets["illustrative"].astype(bool).any()):  # fmt: skip
        note = ("<p style='color:#777;font-size:0.8em'>点位为示例登记表（非真实台账），"
                "请以本地实际台账替换。</p>" if lang == "zh" else
                "<p style='color:#777;font-size:0.8em'>Illustrative register, not the real one.</p>")  # fmt: skip
    return _simple_table(head, rows, lang) + note


def _season_text(windows, lang: str) -> str:
    """Season windows (``("05-01", "09-30")``) in the report language."""
    parts = []
    for start, end in windows or ():
        (m0, d0), (m1, d1) = (map(int, str(x).split("-")) for x in (start, end))
        if lang == "zh":
            parts.append(f"{m0}月{d0}日—{m1}月{d1}日")
        else:
            a, b = (pd.Timestamp(2001, m, d).strftime("%-d %b") for m, d in ((m0, d0), (m1, d1)))
            parts.append(f"{a} - {b}")
    return ("、" if lang == "zh" else ", ").join(parts)


def _gh_note(note: str, windows, lang: str) -> str:
    if note.startswith("outside the key period"):
        return t("gh_outside", lang, period=_season_text(windows, lang))
    return localize_note(note, lang) if lang == "zh" else note.removeprefix("not evaluated: ")


def geohazard_html(assessment, code: str, *, lang: str = "zh") -> str:
    """The unit's geological-hazard points and their weather risk grade, with its section
    heading; ``""`` for a unit without registered points (nothing about geohazards is shown
    there). A unit whose points could not be assessed says so (never "no risk")."""
    towns = getattr(assessment, "geohazards", None)
    if towns is None or towns.empty or code not in set(towns["town_code"]):
        return ""
    town = towns[towns["town_code"] == code].iloc[0]
    points = assessment.geohazard_points
    windows = towns.attrs.get("season_windows")
    sub = points[points["town_code"] == code]
    n = int(town["points_all"])
    fmt = "%m-%d %H:%M"
    level = int(town["level"])
    reasons = [_gh_note(str(x), windows, lang) for x in sub.loc[~sub["evaluated"], "note"] if x]
    reason = (
        "；".join(dict.fromkeys(reasons)) if lang == "zh" else "; ".join(dict.fromkeys(reasons))
    )
    if not bool(town["evaluated"]):
        status = t("gh_unassessed", lang, reason=reason or t("not_evaluated", lang), n=n)
        colour = "#AAAAAA"
    elif level >= 1:
        grade = town["grade_zh"] if lang == "zh" else town["grade_en"]
        trigger = town["trigger_zh"] if lang == "zh" else town["trigger_en"]
        status = t("gh_level", lang, grade=grade, k=int(town["points_at_risk"]), n=n,
                   when=format_local(town["first_time_utc"], fmt), trigger=trigger)  # fmt: skip
        colour = level_names()[level]["colour"]
    else:
        cols = sorted((c for c in town.index if c.startswith("rain_") and c.endswith("h")),
                      key=lambda c: int(c[5:-1]))  # fmt: skip
        rain = ("，" if lang == "zh" else ", ").join(
            t("gh_rain", lang, h=c[5:-1], v=f"{float(town[c]):g}")
            for c in cols
            if pd.notna(town[c])
        )
        status = t("gh_none", lang, n=n, rain=rain)
        colour = "#DDEEDD"
    if bool(town["evaluated"]) and int(town["not_evaluated"]):
        status += t("gh_partly", lang, m=int(town["not_evaluated"]), reason=reason)
    out = [
        section_html("geohazard", lang=lang),
        f'<div style="border-left:8px solid {colour};padding:6px 10px;max-width:900px">'
        f"{html.escape(status)}</div>",
    ]
    at_risk = sub[sub["level"] >= 1].sort_values(["level", "point_id"], ascending=[False, True])
    if len(at_risk):
        rows = []
        for _, p in at_risk.iterrows():
            name = p["name_zh"] if lang == "zh" else (p["name_en"] or p["name_zh"])
            kind = f"{p['type_zh']}（{p['cause_zh']}）" if lang == "zh" else p["type_en"]
            threat = t("gh_people", lang, n=int(p["people"]))
            prop = p["property_zh"] if lang == "zh" else (p["property_en"] or p["property_zh"])
            if prop:
                threat += f"；{prop}" if lang == "zh" else f"; {prop}"
            resp = ("；" if lang == "zh" else "; ").join(
                x for x in (p["responsible"], p["responsible_unit"]) if x
            )
            rows.append([
                html.escape(f"{p['point_id']} {name}"), html.escape(kind), html.escape(p["zone"]),
                html.escape(threat), html.escape(p["monitor"]), html.escape(resp),
                _badge(int(p["level"]), lang), format_local(p["first_time_utc"], fmt),
            ])  # fmt: skip
        head = [t(k, lang) for k in ("gh_point", "gh_type", "gh_zone", "gh_threat", "gh_monitor",
                                     "gh_responsible", "gh_grade", "gh_from")]  # fmt: skip
        out.append(_simple_table(head, rows, lang))
    notes = []
    if bool(sub["illustrative"].any()):
        notes.append(t("gh_illustrative", lang))
    if towns.attrs.get("assumption"):
        notes.append(t("gh_assumption", lang, ruleset=towns.attrs.get("ruleset", "")))
    out += [f"<p style='color:#777;font-size:0.8em'>{html.escape(x)}</p>" for x in notes]
    return "\n".join(out)


def periods_html(assessment, code: str, *, lang: str = "zh") -> str:
    """Holidays, events and seasons over the forecast that concern the unit."""
    periods = assessment.periods
    rows = []
    if periods is not None and not periods.empty:
        sub = periods[(periods["unit_code"] == "") | (periods["unit_code"] == code)]
        for _, p in sub.iterrows():
            name = p["name_zh"] if lang == "zh" else p["name_en"]
            crowd = "" if pd.isna(p["expected_crowd"]) else f"（{int(p['expected_crowd'])}人）"
            scope = t("whole", lang) if p["unit_code"] == "" else _unit_name(assessment, code, lang)
            scope = html.escape(scope)
            rows.append([html.escape(str(name)) + crowd, f"{p['start']} — {p['end']}", scope,
                         html.escape("、".join(p["owners"] or []))])  # fmt: skip
    head = [t(k, lang) for k in ("period", "dates", "scope", "owner")]
    return _simple_table(head, rows, lang)


def _trigger_text(assessment, task, code: str, lang: str) -> str:
    """What calls for a task, as this unit's reader needs it: the unit's own hazards, and for
    a banner-level task that it is one task for the banner and how many units it covers."""
    triggers = [t.split(" ") for t in str(task["triggers"]).split("; ") if t]
    mine = [h for c, h, _ in triggers if c == code] or [h for _, h, _ in triggers]

    def name(h: str) -> str:
        if h in assessment.levels.hazards:
            return assessment.levels[h].rules.name(lang)
        return t(f"period_{h}", lang) if h in ("holiday", "event") else h

    text = "、".join(dict.fromkeys(name(h) for h in mine))
    if task["scope"] == "banner":
        units = len({c for c, _, _ in triggers})
        text += t("banner_task", lang).format(n=units)
    return text


def _basis_words(code: str, lang: str, name) -> str:
    """One language-neutral basis item (``level=4@000:135``) in words, with its plan lines."""
    what, _, where = code.partition("@")
    key, _, arg = what.partition("=")
    if key == "level":
        text = t("basis_level", lang).format(level=level_label(int(arg), lang))
    elif key == "period":
        text = t(f"basis_period_{arg}", lang)
    elif key == "seat":
        text = t("basis_seat", lang).format(units="、".join(name(c) for c in arg.split(",")))
    elif key == "units":
        text = t("basis_units", lang).format(share=arg)
    else:
        text = t(f"basis_{key}", lang)
    return f"{text}（{where}）" if lang == "zh" else f"{text} ({where})"


def _posture_basis(assessment, post, lang: str) -> str:
    """Why the posture is what it is: the special period, and the plan lines behind it."""
    items = [i for i in str(post.get("posture_basis") or "").split("; ") if i]
    basis = ("；" if lang == "zh" else "; ").join(
        _basis_words(i, lang, lambda c: _unit_name(assessment, c, lang)) for i in items
    )
    periods = str(post.get("periods" if lang == "zh" else "periods_en") or "")
    head = t("posture_periods", lang).format(periods=periods) + " " if periods else ""
    return head + (basis or t("posture_basis_routine", lang))


def response_html(assessment, code: str, *, lang: str = "zh") -> str:
    """The unit's response posture, groups, plans, four-stop recommendations and tasks,
    under the name of the jurisdiction's plan; without a loaded plan, the plain sentence
    that there is none (or that its tables are not loaded) instead of an empty section."""
    from cityops.i18n import _catalog

    words = _catalog()[check_lang(lang)]
    if assessment.response is None:
        text = response_plan_text(assessment.jurisdiction, lang=lang)
        return f"<p style='color:#555'>{html.escape(text)}</p>"
    plan = assessment.jurisdiction.response_plan
    basis = ""
    if plan is not None and plan.name(lang):
        basis = (
            "<p style='color:#555;font-size:0.85em'>"
            f"{html.escape(t('plan_basis', lang, plan=plan.name(lang)))}</p>"
        )
    post, tasks = assessment.response.for_unit(code)
    if post is None:
        return f"{basis}<p style='color:#555'>{t('none_listed', lang)}</p>"
    stops = "、".join(words["stops"].get(s, s) for s in post["four_stops"].split("、") if s)
    items = [
        (t("posture", lang), post["posture_zh"] if lang == "zh" else post["posture_en"]),
        (t("posture_basis", lang), _posture_basis(assessment, post, lang)),
        (t("groups", lang), post["groups"] or t("none_listed", lang)),
        (t("plans", lang), post["plans"] or t("none_listed", lang)),
        (t("four_stops", lang), stops or t("none_listed", lang)),
    ]
    head = "".join(
        f"<tr><th style='text-align:left;vertical-align:top'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in items
    )
    rows = [
        [
            html.escape(r["text_zh"] if lang == "zh" else r["text_en"]),
            html.escape(_trigger_text(assessment, r, code, lang)),
            html.escape(r["lead_unit"]),
            html.escape(r["supporting_units"]),
            format_local(r["due_utc"], "%m-%d %H:%M") if r["due_utc"] else "",
            html.escape(words["loops"].get(r["loop"], r["loop"])),
        ]
        for _, r in tasks.iterrows()
    ]
    cols = [t(k, lang) for k in ("task", "hazard", "lead_unit", "supporting", "due", "loop")]
    dis = assessment.response.dissemination
    recipients = ""
    if dis is not None and not dis.empty:
        sub = dis[dis["town_code"] == code].sort_values("level", ascending=False)
        if len(sub):
            top = sub.iloc[0]
            recipients = (
                f"<p><b>{html.escape(t('recipients', lang))}</b>: {html.escape(top['roles_zh'])}"
                f"<br><b>{html.escape(t('channels', lang))}</b>: "
                f"{html.escape(top['channels_zh'])}</p>"
            )
    consult = ""
    if assessment.response.hq_consultation:
        consult = (
            "<p style='border-left:4px solid #c00;padding-left:6px'><b>"
            f"{html.escape(t('hq_consultation', lang))}</b> <span style='color:#555'>"
            + html.escape(
                _basis_words(
                    assessment.response.hq_consultation,
                    lang,
                    lambda c: _unit_name(assessment, c, lang),
                )
            )
            + "</span></p>"
        )
    return (
        basis
        + consult
        + f'<table style="font-size:0.9em" cellpadding="3">{head}</table>'
        + recipients
        + _simple_table(cols, rows, lang)
    )
