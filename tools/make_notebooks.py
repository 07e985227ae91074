"""Write the template notebooks from their cell sources (keeps them reviewable as code).

Run ``.venv/bin/python tools/make_notebooks.py`` after editing (needs ``make samples`` and the
``cityops`` kernel). The notebooks are committed without outputs, except the cells marked
``# NBVAL_CHECK_OUTPUT`` (the headline and the hazard table): nbval compares what they show
with the committed output, for the template's default (the July rainstorm) and for the
fixtures in ``tests/notebooks/`` (a quiet day, the rainstorm, the blizzard).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parents[1]

BRIEFING = [
    (
        "markdown",
        "<!-- 城市运行：镇级气象风险简报模板（辖区由参数 jurisdiction 指定）。由 `cityops brief` 逐镇执行；参数见下一单元。 -->",
    ),
    (
        "code",
        """# A fresh namespace: `cityops brief` runs its units one after another in one kernel.
%reset -f""",
    ),
    (
        "code",
        """# Parameters: papermill replaces this cell's values. Defaults run on the shipped sample.
forecast: str = "../data/samples/july-rainstorm.nc"  # forecast file(s), comma-separated
town: str = "阿镇"  # unit code, name or alias
jurisdiction: str = "ejin-horo"  # jurisdiction folder name or path
rules: str = "national"  # active rule set: national or a YAML file
now: str = ""  # reference time (ISO 8601 UTC), empty for the issue time
lang: str = "zh"  # report language: zh or en
output_dir: str = ""  # folder for headline.png, empty to skip
report_probability: float = 0.3  # ensemble share of members needed to report a level
mapping: str = ""  # YAML mapping of source variable names, empty for none
observed: str = ""  # recent observation file(s), comma-separated, empty for none
history: str = ""  # daily history for the drought index, empty for none
run: str = ""  # a `cityops brief` run's state folder: read its assessment, empty to assess""",
    ),
    (
        "code",
        """# Validate the parameters before any work: a readable error here, not deep below.
from IPython.display import HTML, display

from cityops.report import briefing as br
from cityops.report import plots

p = br.validate_parameters(**br.collect_parameters(globals()))""",
    ),
    (
        "code",
        """# NBVAL_CHECK_OUTPUT
A = br.assessment_for(p)
display(HTML(br.title_html(A, p["town"], lang=p["lang"])))
display(HTML(br.headline_html(A, p["town"], lang=p["lang"])))""",
    ),
    (
        "code",
        """# Who is on duty at the reference time (the jurisdiction's duty.yaml).
display(HTML(br.duty_html(A, lang=p["lang"])))""",
    ),
    (
        "code",
        """# NBVAL_CHECK_OUTPUT
display(HTML(br.section_html("hazards", lang=p["lang"])))
display(HTML(br.hazard_table_html(A, p["town"], lang=p["lang"])))""",
    ),
    (
        "code",
        """display(HTML(br.section_html("summary", lang=p["lang"])))
display(HTML(br.risk_summary_html(A, p["town"], lang=p["lang"])))
display(HTML(br.section_html("assets", lang=p["lang"])))
display(HTML(br.assets_html(A, p["town"], lang=p["lang"])))
display(HTML(br.geohazard_html(A, p["town"], lang=p["lang"])))  # empty without hazard points
display(HTML(br.section_html("periods", lang=p["lang"])))
display(HTML(br.periods_html(A, p["town"], lang=p["lang"])))""",
    ),
    (
        "code",
        """display(HTML(br.section_html("response", lang=p["lang"])))
display(HTML(br.response_html(A, p["town"], lang=p["lang"])))""",
    ),
    (
        "code",
        """display(HTML(br.section_html("map", lang=p["lang"])))
card = plots.headline_card(A, p["town"], br.headline_text(A, p["town"], lang=p["lang"]), lang=p["lang"])
display(br.figure_display(card, br.output_path(p, "headline.png")))""",
    ),
    (
        "code",
        """display(HTML(br.section_html("meteogram", lang=p["lang"])))
display(br.figure_display(plots.meteogram(A, p["town"], lang=p["lang"])))""",
    ),
    (
        "code",
        """display(HTML(br.section_html("data", lang=p["lang"])))
display(HTML(br.data_section_html(A, lang=p["lang"])))""",
    ),
]


REVIEW = [
    (
        "markdown",
        "<!-- 伊金霍洛旗城市运行：极端天气过程复盘评估模板。由 `cityops review` 执行；参数见下一单元。 -->",
    ),
    (
        "code",
        """# Parameters: papermill replaces this cell's values. Defaults run on the shipped sample event.
forecast: str = "../data/samples/july-rainstorm.nc"  # forecasts, brief runs, CAP files or a signal log (comma-separated)
observed: str = "../data/samples/july-rainstorm.observed.nc"  # gridded analyses or station observations
jurisdiction: str = "ejin-horo"  # jurisdiction folder name or path
rules: str = "national"  # rule set the warnings were judged by
window: str = "24h"  # review window, aligned to 00 UTC
start: str = ""  # review period start (ISO 8601 UTC), empty for the observations' first time
end: str = ""  # review period end, empty for the observations' last time
ledger: str = "../data/samples/july-rainstorm.ledger.sqlite"  # task ledger, empty for none
hotline: str = "../data/jurisdictions/ejin-horo/review/samples/hotline_12345.csv"  # 12345 tickets
alarms: str = "../data/jurisdictions/ejin-horo/review/samples/alarms.csv"  # alarms by type
incidents: str = "../data/jurisdictions/ejin-horo/review/samples/incidents.csv"  # incidents
heating: str = ""  # heating complaints ("four ones"), empty for none
findings: str = ""  # findings of the review meeting (YAML or CSV), empty for none
exercise: bool = False  # mark every output as an exercise (drill); scenario inputs always are
now: str = ""  # time the response figures are "as of", empty for the review end
lang: str = "zh"  # report language: zh or en
case_library: str = ""  # case library folder for the earlier-cases list, empty for the jurisdiction's""",
    ),
    (
        "code",
        """# Validate the parameters and compute the review: a readable error here, not deep below.
from IPython.display import HTML, display

from cityops.report import briefing as br
from cityops.report import review as rr
from cityops.review.run import parameters_to_inputs, run_review

inputs, lang, library = parameters_to_inputs(**br.collect_parameters(globals()))
R = run_review(inputs)""",
    ),
    (
        "code",
        """display(HTML(rr.title_html(R, lang=lang)))
display(HTML(rr.summary_html(R, lang=lang)))""",
    ),
    (
        "code",
        """display(HTML(rr.section("review_sec_timeline", lang=lang)))
display(br.figure_display(rr.timeline_figure(R, lang=lang)))""",
    ),
    (
        "code",
        """display(HTML(rr.section("review_sec_maps", lang=lang)))
display(br.figure_display(rr.level_maps(R, lang=lang)))""",
    ),
    (
        "code",
        """display(HTML(rr.section("review_sec_scores", lang=lang)))
display(HTML(rr.scores_html(R, lang=lang)))
display(HTML(rr.section("review_sec_cases", lang=lang)))
display(HTML(rr.cases_html(R, lang=lang)))""",
    ),
    (
        "code",
        """display(HTML(rr.section("review_sec_response", lang=lang)))
display(HTML(rr.response_html(R, lang=lang)))
display(HTML(rr.section("review_sec_safety", lang=lang)))
display(HTML(rr.safety_html(R, lang=lang)))""",
    ),
    (
        "code",
        """display(HTML(rr.section("review_sec_findings", lang=lang)))
display(HTML(rr.findings_html(R, lang=lang)))
display(HTML(rr.section("review_sec_library", lang=lang)))
display(HTML(rr.library_html(library, lang=lang)))""",
    ),
    (
        "code",
        """display(HTML(rr.section("review_sec_data", lang=lang)))
display(HTML(rr.data_html(R, lang=lang)))""",
    ),
]


EXPLORER = [
    (
        "markdown",
        "# 预报交互探索 · Interactive forecast exploration\n\n"
        "选择预报文件、镇（区）、灾种和时次；右侧“假设情景”只在内存中修改一个阈值，不改动规则表。"
        " Pick a forecast, a unit, a hazard and a valid time; the what-if panel changes one "
        "threshold in memory only.",
    ),
    (
        "code",
        '''forecast = ""  # a forecast file, empty for the newest in the folder
folder = "../data/samples"  # forecast folder for the file picker
jurisdiction = "ejin-horo"
lang = "zh"''',
    ),
    (
        "code",
        """from cityops.report.explore import Explorer

ex = Explorer(forecast or None, folder=folder, jurisdiction=jurisdiction, lang=lang).show()""",
    ),
    (
        "code",
        """# A static snapshot of the current view: what an exported HTML copy shows without widgets.
ex.snapshot()""",
    ),
]


EXPLORE = [
    (
        "markdown",
        "# 预报探索 · Forecast exploration\n\nOpen a forecast, evaluate the warning rules and look at the banner and one town. "
        "Change the parameters below and rerun; every cell calls the `cityops` package.",
    ),
    (
        "code",
        '''forecast = "../data/samples/july-rainstorm.nc"  # any forecast file cityops can read
jurisdiction = "ejin-horo"
lang = "zh"''',
    ),
    (
        "code",
        """from IPython.display import HTML, display

from cityops.pipeline import assess
from cityops.report import briefing as br
from cityops.report import plots

A = assess(forecast, jurisdiction=jurisdiction)
reached = A.table[A.table["level"] > 0]
reached[["town_name", "hazard", "level_name", "onset_utc", "peak_value", "units", "tier", "extreme"]]""",
    ),
    ("code", """display(br.figure_display(plots.level_map(A, lang=lang)))"""),
    (
        "code",
        """# Pick a town: the one with the highest level, or type a name or alias such as "阿镇".
town = reached.sort_values("level", ascending=False)["town_code"].iloc[0] if len(reached) else "阿镇"
display(HTML(br.headline_html(A, A.jurisdiction.unit(town).code, lang=lang)))
display(br.figure_display(plots.meteogram(A, A.jurisdiction.unit(town).code, lang=lang)))""",
    ),
]


def build(cells, *, parameters: bool = True) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "cityops", "display_name": "Python (cityops)", "language": "python"},
        "language_info": {"name": "python"},
    }
    for i, (kind, src) in enumerate(cells):
        cell = nbf.v4.new_markdown_cell(src) if kind == "markdown" else nbf.v4.new_code_cell(src)
        cell.id = f"cell-{i}"
        if parameters and src.startswith("# Parameters:"):
            cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    return nb


CHECK = "# NBVAL_CHECK_OUTPUT"
#: nbval fixtures: scenario → town (tests/notebooks/briefing_<scenario>.ipynb).
FIXTURES = {"quiet-day": "阿镇", "july-rainstorm": "阿镇", "january-blizzard": "苏布尔嘎镇"}


def with_forecast(cells, forecast: str, town: str):
    """The briefing cells with another default forecast and town in the parameters cell."""
    out = list(cells)
    i = next(i for i, (_, src) in enumerate(out) if src.startswith("# Parameters:"))
    kind, src = out[i]
    src = src.replace('"../data/samples/july-rainstorm.nc"', f'"{forecast}"')
    src = src.replace('town: str = "阿镇"', f'town: str = "{town}"')
    out[i] = (kind, src)
    return out


def keep_checked_outputs(path: Path) -> None:
    """Execute ``path`` in its folder and keep only the outputs nbval compares."""
    from nbclient import NotebookClient

    nb = nbf.read(path, as_version=4)
    NotebookClient(
        nb, kernel_name="cityops", timeout=600, resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    for n, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)  # wall-clock times: reruns stay identical
        if cell.cell_type != "code":
            continue
        # nbval only compares cells whose reference was run (execution_count set).
        cell.execution_count = n if cell.source.startswith(CHECK) else None
        if not cell.source.startswith(CHECK):
            cell.outputs = []
        for output in cell.outputs:
            output.pop("execution_count", None)
    nb.metadata.pop("widgets", None)
    nbf.write(nb, path)


def write(path: Path, nb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbf.write(nb, path)
    # The formatter owns code layout, in notebooks too (`make lint` checks them).
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(path)], check=False)
    print(path)


if __name__ == "__main__":
    template = ROOT / "templates" / "town_briefing.ipynb"
    write(template, build(BRIEFING))
    write(ROOT / "templates" / "post_event_review.ipynb", build(REVIEW))
    write(ROOT / "notebooks" / "explore_forecast.ipynb", build(EXPLORE, parameters=False))
    write(ROOT / "notebooks" / "explore.ipynb", build(EXPLORER, parameters=False))
    checked = [template]
    for scenario, town in FIXTURES.items():
        path = ROOT / "tests" / "notebooks" / f"briefing_{scenario}.ipynb"
        write(path, build(with_forecast(BRIEFING, f"../../data/samples/{scenario}.nc", town)))
        checked.append(path)
    for path in checked:
        keep_checked_outputs(path)
    # The review template is committed without outputs (nbval-lax runs it on the sample).
