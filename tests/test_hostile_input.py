"""Hostile input: names, events, plans, notes and findings are data, never code.

A copy of the Ejin Horo jurisdiction gets script tags, Jinja and mathtext syntax, SQL and a
path traversal in every free-text field (unit, banner, event, asset, plan, group names and
texts), and the command line gets them in ``--by``, ``--note``, the findings and the file
names. The HTML reports escape them, the notebooks receive them as literal values, the CAP
files hold them as XML text, the ledger keeps them verbatim, and no file lands outside the
output folder. A static guard keeps ``eval``, ``pickle``, unsafe YAML/XML parsing and
``shell=True`` out of the package.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.conftest import ROOT

SCRIPT = Path(sys.executable).with_name("cityops")
CITYOPS = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cityops.cli"]
CAP_NS = {"c": "urn:oasis:names:tc:emergency:cap:1.2"}

#: In every free-text field. ``$\frac{$`` is invalid matplotlib mathtext: as code it breaks
#: every figure; as data it is drawn as typed.
PAYLOAD = (
    "<script>alert(1)</script>{{ 7*7 }}{% raw %}'; DROP TABLE tasks;--"
    '../../etc/passwd"q" $\\frac{$ 50%'
)
SCRIPT_TAG = "<script>alert"
ESCAPED_TAG = "&lt;script&gt;alert(1)&lt;/script&gt;"
STORM_TOWN = "150627100"  # red rainstorm in july-rainstorm
NO_SEAT = "150627L01"  # 水岸新城: no geometry, the other code path
# A folder and a file name a user might really have, with quotes, braces and markup.
FOLDER_NAME = "辖区 \"q\" 'a' {{ 7*7 }} $x; #"
FORECAST_NAME = "storm <img src=x onerror=alert(1)> 'q' {{ 7*7 }}.nc"  # no "/": a name


def hostile(text) -> str:
    return f"{text}{PAYLOAD}"


def make_hostile_jurisdiction(dest: Path) -> Path:
    """Copy data/jurisdictions/ejin-horo to ``dest`` with PAYLOAD in every free-text field.

    Units keep their real names as aliases, so events and assets that name them resolve.
    """
    shutil.copytree(ROOT / "data" / "jurisdictions" / "ejin-horo", dest)

    def edit_yaml(rel: str, change) -> None:
        path = dest / rel
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    units = json.loads((dest / "units.geojson").read_text(encoding="utf-8"))
    for feature in units["features"]:
        props = feature["properties"]
        props["aliases"] = [props["name_zh"], props["name_en"], *props.get("aliases", [])]
        props["name_zh"], props["name_en"] = hostile(props["name_zh"]), hostile(props["name_en"])
    (dest / "units.geojson").write_text(json.dumps(units, ensure_ascii=False), encoding="utf-8")

    def banner(d):
        d["name_zh"], d["name_en"] = hostile(d["name_zh"]), hostile(d["name_en"])
        d["name_traps"] = {}  # the traps name real units, which now resolve as aliases

    def events(d):
        for e in d["events"]:
            e["name_zh"], e["name_en"] = hostile(e["name_zh"]), hostile(e["name_en"])
            e["owners"] = [hostile(o) for o in e["owners"]]

    def measures(d):
        for m in d["measures"]:
            for key in ("text_zh", "text_en", "lead_unit"):
                m[key] = hostile(m[key])

    def named(key):
        def change(d):
            for item in d[key]:
                item["name_zh"], item["name_en"] = (
                    hostile(item["name_zh"]),
                    hostile(item["name_en"]),
                )

        return change

    edit_yaml("jurisdiction.yaml", banner)
    edit_yaml("events.yaml", events)
    edit_yaml("plan/measures.yaml", measures)
    edit_yaml("plan/groups.yaml", named("groups"))
    edit_yaml("plan/special_plans.yaml", named("plans"))

    path = dest / "assets.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for key in ("name_zh", "name_en", "plan_zh", "owner"):
            row[key] = hostile(row[key])
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return dest


def assert_inert_html(html: str, where: str) -> None:
    """The payload is shown as text: escaped, not executed, not evaluated as a template."""
    assert SCRIPT_TAG not in html, f"{where}: unescaped <script> from the input"
    assert "<img src=x" not in html, f"{where}: unescaped <img> from a file name"
    assert ESCAPED_TAG in html, f"{where}: the hostile text is not shown at all"
    assert "{{ 7*7 }}" in html and "{% raw %}" in html, f"{where}: template syntax was evaluated"
    assert "&lt;/script&gt;49" not in html and "</script>49" not in html


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture(scope="module")
def hostile_juris(tmp_path_factory) -> Path:
    return make_hostile_jurisdiction(tmp_path_factory.mktemp("h") / FOLDER_NAME)


@pytest.fixture(scope="module")
def storm(tmp_path_factory) -> Path:
    from cityops.scenarios.io import write_scenario

    return write_scenario("july-rainstorm", tmp_path_factory.mktemp("f") / FORECAST_NAME)


@pytest.fixture(scope="module")
def A(storm, hostile_juris):
    from cityops.pipeline import assess

    return assess(storm, jurisdiction=hostile_juris)


# ---------------------------------------------------------------------------------------------
# Fast: the report functions, CAP, figures, ledger, path safety


def test_hostile_jurisdiction_loads_and_still_resolves(A):
    unit = A.jurisdiction.unit("阿勒腾席热镇")  # the real name, now an alias
    assert unit.code == STORM_TOWN and unit.name_zh.endswith(PAYLOAD)
    assert (A.table[A.table.town_code == STORM_TOWN]["level"] == 4).any()


def test_briefing_sections_escape_every_field(A):
    from cityops.report import briefing as br

    for code in (STORM_TOWN, NO_SEAT):
        html = "".join(
            f(A, code, lang=lang)
            for lang in ("zh", "en")
            for f in (br.title_html, br.headline_html, br.hazard_table_html,
                      br.risk_summary_html, br.assets_html, br.periods_html, br.response_html)
        )  # fmt: skip
        assert_inert_html(html, f"briefing sections of {code}")
    assert_inert_html(br.periods_html(A, STORM_TOWN), "periods (event in the storm town)")
    data = br.data_section_html(A)
    assert "<img src=x" not in data and "&lt;img src=x onerror=alert(1)&gt;" in data  # file name


def test_index_escapes_names(A, tmp_path):
    from cityops.report.index import write_index

    failures = {NO_SEAT: hostile("RuntimeError: ")}  # a failure message is text too
    html = write_index(A, tmp_path, codes=[STORM_TOWN, NO_SEAT], failures=failures)
    assert_inert_html(html.read_text(encoding="utf-8"), "index.html")


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")  # very long names
def test_figures_draw_names_as_typed(A, tmp_path):
    """``$...$`` in a name is not mathtext: every figure renders."""
    from cityops.report import briefing as br
    from cityops.report import plots

    headline = br.headline_text(A, STORM_TOWN)
    for name, fig in (
        ("units", plots.unit_level_map(A)),
        ("grid", plots.level_map(A, highlight=STORM_TOWN)),
        ("meteogram", plots.meteogram(A, STORM_TOWN)),
        ("card", plots.headline_card(A, STORM_TOWN, headline)),
    ):
        assert len(br.figure_png(fig, tmp_path / f"{name}.png")) > 1000


def test_cap_holds_hostile_text_as_text(A, tmp_path):
    import defusedxml.ElementTree as DET

    from cityops.cap import write_cap, xml_text

    files = write_cap(A, tmp_path / "cap")
    assert files and all(p.parent == tmp_path / "cap" for p in files)
    rain = DET.parse(str(tmp_path / "cap" / "cap_rainstorm.xml"), forbid_dtd=True).getroot()
    assert rain.findtext(".//c:senderName", namespaces=CAP_NS).startswith(hostile("伊金霍洛旗"))
    areas = [a.text for a in rain.iterfind(".//c:areaDesc", CAP_NS)]
    assert hostile("阿勒腾席热镇") in areas
    raw = (tmp_path / "cap" / "cap_rainstorm.xml").read_text(encoding="utf-8")
    assert SCRIPT_TAG not in raw and "&lt;script&gt;" in raw
    # Characters XML cannot hold are dropped, the rest is kept.
    assert xml_text("a\x00b\x0bc\td\ne") == "abc\td\ne"


def test_ledger_keeps_hostile_notes_verbatim(tmp_path):
    """Through the command line: --by and --note reach SQLite as parameters."""
    import pandas as pd

    from cityops import ledger

    db = tmp_path / "ledger.sqlite"
    row = {
        "town_code": STORM_TOWN, "hazard": "rainstorm", "measure": "m1", "loop": "middle",
        "lead_unit": "住建局", "supporting_units": ["应急局"], "due_utc": "2026-07-10T10:00Z",
        "onset_utc": "2026-07-10T12:00Z", "end_utc": "2026-07-10T18:00Z", "level": 2,
        "source": "test", "text_zh": "text",
    }  # fmt: skip
    tid = ledger.merge_run(db, pd.DataFrame([row]), run_time="2026-07-10T00:00Z",
                           live=[(row["town_code"], row["hazard"])])["task_ids"][0]  # fmt: skip
    note = hostile("现场积水") + "\n第二行 \\ ` $(touch pwned) ; rm -rf /"
    by = hostile("值班员")
    env = {**os.environ, "MPLBACKEND": "agg"}
    res = subprocess.run(
        [*CITYOPS, "tasks", "--ledger", str(db), "update", tid, "--state", "dispatched",
         "--by", by, "--note", note],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = subprocess.run([*CITYOPS, "tasks", "--ledger", str(db), "show", tid],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert by in res.stdout and hostile("现场积水") in res.stdout
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        stored = conn.execute(
            "SELECT actor, note FROM task_history WHERE task_id = ? AND to_state = 'dispatched'",
            (tid,),
        ).fetchone()
    assert "tasks" in tables
    assert stored == (by, note)
    assert not (tmp_path / "pwned").exists()


def test_unit_codes_and_hazard_ids_cannot_traverse(tmp_path):
    """Output paths are built from codes; a code or id that is not one is refused on load."""
    from cityops.errors import DataFileError
    from cityops.geo.jurisdiction import load_jurisdiction
    from cityops.rules.table import load_rule_table

    for bad in ("../../evil", "javascript:alert(1)", "a/b", ".hidden"):
        folder = tmp_path / f"j{abs(hash(bad))}"
        shutil.copytree(ROOT / "data" / "jurisdictions" / "ejin-horo", folder)
        units = json.loads((folder / "units.geojson").read_text(encoding="utf-8"))
        units["features"][0]["properties"]["code"] = bad
        (folder / "units.geojson").write_text(json.dumps(units, ensure_ascii=False))
        with pytest.raises(DataFileError, match="codes name output folders"):
            load_jurisdiction(folder)
    rules = yaml.safe_load((ROOT / "cityops/rules/tables/haze-2013.yaml").read_text("utf-8"))
    rules["hazards"]["../../evil"] = rules["hazards"].pop("haze")
    path = tmp_path / "evil-rules.yaml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DataFileError, match="ids name files"):
        load_rule_table(path)


# ---------------------------------------------------------------------------------------------
# Static guard: no code from data anywhere in the package

PACKAGE = ROOT / "cityops"

#: pattern -> why it is refused. Comments and docstrings are not exempt: reword them.
FORBIDDEN = {
    r"(?<![\w.])eval\(": "eval() of text",
    r"(?<![\w.])exec\(": "exec() of text",
    r"(?<![\w.])(?:__import__|compile)\(": "dynamic code",
    r"\b(?:pickle|cPickle|dill|joblib|marshal|shelve)\b|read_pickle|allow_pickle\s*=\s*True": (
        "unpickling runs code from the file"
    ),
    r"yaml\.(?:load|load_all|full_load|unsafe_load|unsafe_load_all)\(": "yaml: use safe_load",
    r"Loader\s*=\s*yaml\.(?:Loader|FullLoader|UnsafeLoader)\b": "yaml: use SafeLoader",
    r"shell\s*=\s*True|os\.system\(|os\.popen\(": "a shell parses the command",
    r"^\s*(?:import xml\.|from xml\.(?!etree\.ElementTree import ParseError\b))": (
        "stdlib XML parsers: read input with defusedxml"
    ),
    r"from_string\(|jinja2\.Template\(|autoescape\s*=\s*False|\bMarkup\(": (
        "templates from data or without autoescaping"
    ),
}
#: lxml parsing is allowed only where the input is safe; path -> (count, why).
LXML_PARSE = re.compile(r"etree\.(?:parse|fromstring|XML|iterparse|XMLParser)\(")
LXML_ALLOWED = {
    "cityops/brief.py": "_record_cap: reads back the CAP files this run has just written",
}
#: Expressions an SQL f-string may interpolate: built from '?' marks and fixed column names.
SQL_FRAGMENTS = {
    "sets",  # "col = ?, ..." from a dict of fixed column names
    "where",  # " WHERE col = ? AND ..." from fixed column names
    "marks",  # "?,?,?"
    "int(timeout * 1000)",  # PRAGMA busy_timeout: a number
    "BUSY_TIMEOUT_MS",
    "', '.join(values)",  # fixed column names (keys of a dict literal)
    "', '.join('?' * len(values))",
    "statement",  # schema migrations: the module's own _MIGRATIONS constant
}


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_static_guard_no_code_from_data():
    found = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern, why in FORBIDDEN.items():
                if re.search(pattern, line):
                    found.append(f"{rel}:{n}: {why}: {line.strip()}")
            if LXML_PARSE.search(line) and rel not in LXML_ALLOWED:
                found.append(f"{rel}:{n}: lxml parsing outside {sorted(LXML_ALLOWED)}: {line}")
    for template in (PACKAGE / "report" / "templates").glob("*"):
        text = template.read_text(encoding="utf-8")
        for bad in ("|safe", "| safe", "autoescape false", "{% autoescape"):
            if bad in text:
                found.append(f"{template.relative_to(ROOT)}: {bad!r} turns escaping off")
    assert not found, "\n".join(found)


def _sql_parts(node):
    """The non-literal pieces of an SQL text: f-string fields and concatenated expressions."""
    if isinstance(node, ast.Constant):
        return []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _sql_parts(node.left) + _sql_parts(node.right)
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
    return [node]  # a name, a call ("...".format(x)), anything else: must be known


def test_static_guard_sql_is_parameterised():
    """SQL text never contains a value: what execute() gets spliced into its SQL is only '?'
    marks and fixed column lists (SQL_FRAGMENTS); values go in as parameters."""
    found = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "executemany", "executescript")
                and node.args
            ):
                for part in _sql_parts(node.args[0]):
                    if ast.unparse(part) not in SQL_FRAGMENTS:
                        found.append(f"{path.name}:{node.lineno}: {ast.unparse(part)} in SQL")
    assert not found, "\n".join(found)


def test_static_guard_catches_what_it_should():
    """The guard's patterns match the forms they are meant to refuse (and not lookalikes)."""
    hits = {
        "x = eval(text)": True,
        "exec(code)": True,
        "ds.eval()": False,
        "import pickle": True,
        "yaml.load(fh)": True,
        "yaml.safe_load(fh)": False,
        "subprocess.run(cmd, shell=True)": True,
        "import xml.etree.ElementTree as ET": True,
        "from xml.etree.ElementTree import ParseError": False,
        "env.from_string(name)": True,
    }
    for line, expected in hits.items():
        assert any(re.search(p, line) for p in FORBIDDEN) == expected, line


# ---------------------------------------------------------------------------------------------
# Slow: the whole path through the command line (brief, sign, tasks, review)


def _run(*args, cwd=None, timeout=900):
    return subprocess.run(
        [*CITYOPS, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "agg"},
        cwd=cwd,
        timeout=timeout,
    )


def _injected(notebook: Path) -> dict:
    """The papermill-injected parameters: every statement a ``name = <literal>``."""
    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    values = {}
    for stmt in ast.parse(cells[0].source).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1, ast.unparse(stmt)
        assert isinstance(stmt.targets[0], ast.Name), ast.unparse(stmt)
        values[stmt.targets[0].id] = ast.literal_eval(stmt.value)  # raises unless a literal
    return values


@pytest.mark.slow
def test_hostile_jurisdiction_end_to_end(storm, hostile_juris, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    forecast = work / FORECAST_NAME
    shutil.copy(storm, forecast)
    out, db, library = work / "brief", work / "ledger.sqlite", work / "cases"
    before = all_files(tmp_path)
    evil_before = set(tmp_path.parent.rglob("*evil*"))

    # brief: two units (one with geometry, one without), the ledger on.
    res = _run("-q", "brief", forecast, "--out", out, "--towns", f"{STORM_TOWN},{NO_SEAT}",
               "--jobs", "2", "--jurisdiction", hostile_juris, "--ledger", db, cwd=work)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert_inert_html((out / "index.html").read_text(encoding="utf-8"), "index.html")
    for code in (STORM_TOWN, NO_SEAT):
        html = (out / code / "briefing.html").read_text(encoding="utf-8")
        assert_inert_html(html, f"{code}/briefing.html")
        params = _injected(out / code / "briefing.ipynb")
        assert params["town"] == code
        assert params["jurisdiction"] == str(hostile_juris)  # quotes, braces: one literal
        assert params["forecast"] == str(forecast)
    rain = (out / "cap" / "cap_rainstorm.xml").read_text(encoding="utf-8")
    assert SCRIPT_TAG not in rain and PAYLOAD.replace("<", "&lt;").replace(">", "&gt;") in rain

    # sign with a hostile name.
    by = "<script>alert(1)</script>{{ 7*7 }}'\"; DROP TABLE tasks;--"
    res = _run("sign", out, "--by", by, "--ledger", db, "--at", "2026-07-10T00:30Z")
    assert res.returncode == 0, res.stderr
    import defusedxml.ElementTree as DET

    sent = sorted((work / "issued").glob("*/cap.xml"))
    assert sent
    for path in sent:  # the name is data in the message that is sent, never markup
        root = DET.parse(str(path), forbid_dtd=True).getroot()
        assert root.findtext("c:note", namespaces=CAP_NS).endswith(f"签发：{by}")
        assert SCRIPT_TAG not in path.read_text(encoding="utf-8")

    # tasks: hostile plan texts listed and exported as they are, a hostile note kept.
    res = _run("tasks", "--ledger", db, "list", "--town", STORM_TOWN)
    assert res.returncode == 0 and hostile("旗气象局") in res.stdout, res.stderr
    tid = res.stdout.split()[0]
    note = hostile("现场")
    res = _run("tasks", "--ledger", db, "update", tid, "--state", "dispatched", "--by", by,
               "--note", note)  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = _run("tasks", "--ledger", db, "show", tid)
    assert res.returncode == 0 and note in res.stdout and by in res.stdout
    res = _run("tasks", "--ledger", db, "export", "--out", work / "tasks.csv")
    assert res.returncode == 0, res.stderr
    with (work / "tasks.csv").open(encoding="utf-8", newline="") as fh:
        lead_units = {row["lead_unit"] for row in csv.DictReader(fh)}
    assert hostile("旗气象局") in lead_units

    # review: hostile findings; a case id that is a path is refused, the default one is a code.
    findings = work / "findings.yaml"
    findings.write_text(
        yaml.safe_dump(
            {"findings": [{"category": "measure", "finding": hostile("发现"),
                           "owner": hostile("旗气象局"), "proposed_change": hostile("建议")}]},
            allow_unicode=True,
        ),
        encoding="utf-8",
    )  # fmt: skip
    common = ["-q", "review", "--forecast", forecast, "--observed", forecast, "--out",
              work / "review", "--jurisdiction", hostile_juris, "--ledger", db, "--findings",
              findings, "--case-library", library]  # fmt: skip
    res = _run(*common, "--case-id", "../evil")
    assert res.returncode == 2 and "../evil" in res.stderr and "Traceback" not in res.stderr
    res = _run(*common)
    assert res.returncode == 0, res.stderr[-3000:]
    html = (work / "review" / "review.html").read_text(encoding="utf-8")
    assert_inert_html(html, "review.html")
    params = _injected(work / "review" / "review.ipynb")
    assert params["findings"] == str(findings) and params["jurisdiction"] == str(hostile_juris)
    cases = list(library.glob("*.json"))
    assert [p.name for p in cases] == ["150627-20260710-exercise.json"]
    saved = json.loads(cases[0].read_text(encoding="utf-8"))
    assert hostile("发现") in [f["finding"] for f in saved["findings"]]

    # Nothing outside the output folders, the ledger and the case library.
    allowed = (out, work / "review", library, work / "issued")  # issued: beside the ledger
    new = all_files(tmp_path) - before
    stray = [
        p for p in new
        if not any(p.is_relative_to(a) for a in allowed)
        and p not in (db, work / "tasks.csv", findings)
        and not p.name.startswith(f"{db.name}-")  # SQLite WAL/SHM beside the ledger
        and p.name not in (".brief.lock", ".review.lock")
    ]  # fmt: skip
    assert not stray, stray
    # A case id "../evil" must not have written beside the library or the test folder
    # (compared with what was there before: other tests share the parent folder).
    assert set(tmp_path.parent.rglob("*evil*")) <= evil_before
    assert not [p for p in tmp_path.rglob("passwd")]
