"""The banner overview page (``index.html``) of a briefing run."""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2

from cityops import __version__
from cityops.i18n import level_label, t
from cityops.report.briefing import extreme_criteria_text, figure_png, response_plan_text
from cityops.report.plots import level_map, unit_level_map
from cityops.resources import package_data
from cityops.response.duty import jurisdiction_duty_lines
from cityops.rules.table import level_names
from cityops.timeutil import format_local

__all__ = ["overview_figures", "overview_rows", "write_index"]


def overview_rows(assessment, codes, failures, lang: str) -> list[dict]:
    """One row per unit: highest level, hazards at that level, earliest onset, extreme."""
    frame = assessment.table
    names = level_names()
    rows = []
    for code in codes:
        unit = assessment.jurisdiction.unit(code)
        sub = frame[(frame["town_code"] == code) & frame["evaluated"]]
        level = int(sub["level"].max()) if len(sub) else 0
        top = sub[sub["level"] == level] if level else sub.iloc[0:0]
        hazards = (
            "、".join(top["hazard_name_zh"]) if lang == "zh" else ", ".join(top["hazard_name_en"])
        )
        onsets = [o for o in top["onset_utc"] if o]
        rows.append(
            {
                "code": code,
                "name": unit.name_zh if lang == "zh" else unit.name_en,
                "level": level,
                "level_text": level_label(level, lang) if len(sub) else t("not_evaluated", lang),
                # Nothing assessed is grey, never the colour of "no warning weather".
                "colour": names[level]["colour"] if len(sub) else "#AAAAAA",
                "fg": "#000" if level in (0, 2) else "#fff",
                "hazards": hazards,
                "onset": format_local(min(onsets), "%m-%d %H:%M") if onsets else "",
                "extreme": t("word_yes", lang) if bool(sub["extreme"].any()) else "",
                "failed": failures.get(code, ""),
                "link": f"{code}/briefing.html" if code not in failures else "",
                "tasks": f"{code}/tasks.csv",
            }
        )
    return rows


def overview_figures(assessment, folder: Path, *, lang: str = "zh") -> tuple[bytes, bytes]:
    """Write ``overview.png`` (units by level) and ``overview_grid.png`` into ``folder``;
    their PNG bytes."""
    png = figure_png(unit_level_map(assessment, lang=lang), folder / "overview.png")
    grid_png = figure_png(level_map(assessment, lang=lang), folder / "overview_grid.png")
    return png, grid_png


def write_index(
    assessment,
    folder: Path,
    *,
    codes,
    failures,
    lang: str = "zh",
    figures: tuple[bytes, bytes] | None = None,
) -> Path:
    """Write ``index.html`` (and the overview maps, unless ``figures`` gives them, as
    :func:`overview_figures` made them).

    ``folder`` is the run being built: links point to what is already in it (CAP files,
    dissemination list), so the page never links to a file the run does not have.
    """
    png, grid_png = figures or overview_figures(assessment, folder, lang=lang)
    cap_files = sorted(p.name for p in (folder / "cap").glob("cap_*.xml"))
    downloads = [
        name
        for name in ("town_hazards.csv", "town_hazards.json", "levels.nc", "dissemination.csv")
        if (folder / name).exists()
    ] + ["run.json"]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(package_data("report", "templates"))),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    juris = assessment.jurisdiction
    table = assessment.levels.table
    page = env.get_template("index.html.j2").render(
        lang=lang,
        title=t("banner_title", lang, name=juris.name_zh if lang == "zh" else juris.name_en),
        issued_label=t("issued", lang),
        issued=format_local(assessment.issued, "%Y-%m-%d %H:%M"),
        reference_label=t("reference_time", lang),
        reference=format_local(assessment.now, "%Y-%m-%d %H:%M"),
        times_note=t("times_note", lang),
        duty_lines=jurisdiction_duty_lines(juris, assessment.now, lang=lang),
        scenario=(
            t("exercise_scenario", lang, name=assessment.forecast.attrs["cityops_scenario"])
            if assessment.forecast.attrs.get("cityops_scenario")
            else ""
        ),
        exercise_banner=t("exercise_banner", lang) if assessment.is_exercise else "",
        exercise_tag=t("exercise_tag", lang) if assessment.is_exercise else "",
        overview_label=t("overview", lang),
        overview_png=base64.b64encode(png).decode("ascii"),
        grid_png=base64.b64encode(grid_png).decode("ascii"),
        map_alt=t("map_all", lang),
        grid_label=t("field_map", lang),
        cap_label=t("cap_files", lang),
        cap_files=[f"cap/{name}" for name in cap_files],
        tasks_label=t("task_list", lang),
        downloads_label=t("downloads", lang),
        downloads=downloads,
        unit_label=t("towns", lang),
        level_label=t("highest_level", lang),
        hazard_label=t("hazard", lang),
        onset_label=t("onset", lang),
        extreme_label=t("extreme", lang),
        briefing_label=t("briefing", lang),
        failed_label=t("run_failed", lang),
        rows=overview_rows(assessment, codes, failures, lang),
        rules_label=t("ruleset", lang),
        rules=f"{table.title_zh if lang == 'zh' else table.title_en} v{table.version}",
        criteria_label=t("extreme_criteria", lang),
        criteria=extreme_criteria_text(juris, lang=lang),
        plan_label=t("response_plan", lang),
        plan=response_plan_text(juris, lang=lang),
        version=__version__,
    )
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
