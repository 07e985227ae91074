"""The briefing batch: one broken unit does not stop the others; output replaced atomically."""

from __future__ import annotations

import json

import nbformat
import pytest

from cityops.brief import BriefOptions, run_briefings, template_path
from cityops.errors import PartialFailure
from cityops.scenarios import write_scenario

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    return write_scenario("quiet-day", tmp_path_factory.mktemp("q") / "quiet.nc")


def broken_template(folder, code):
    nb = nbformat.read(template_path(), as_version=4)
    nb.cells.insert(
        4,  # after the reset, parameters and validation cells
        nbformat.v4.new_code_cell(
            f'if p["town"] == "{code}":\n    raise RuntimeError("deliberately broken unit")'
        ),
    )
    path = folder / "broken.ipynb"
    nbformat.write(nb, path)
    return path


def test_one_broken_unit_reported_others_finish(quiet, tmp_path):
    opts = BriefOptions(
        towns="150627100,150627104", jobs=2, template=str(broken_template(tmp_path, "150627104"))
    )
    out = tmp_path / "run"
    with pytest.raises(PartialFailure) as err:
        run_briefings(quiet, out, opts)
    assert set(err.value.failed) == {"150627104"}
    assert "deliberately broken unit" in err.value.failed["150627104"]
    assert (out / "150627100" / "briefing.html").exists()
    assert not (out / "150627104" / "briefing.html").exists()
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "deliberately broken unit" in index
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert list(run["failures"]) == ["150627104"]


def test_rerun_replaces_output_and_quiet_day_says_so(quiet, tmp_path):
    from cityops.fsio import write_marker

    out = tmp_path / "run"
    out.mkdir()
    write_marker(out, "brief")  # an earlier brief run: replaced whole, its files gone
    (out / "stale.txt").write_text("from an earlier run")
    index = run_briefings(quiet, out, BriefOptions(towns="阿镇", jobs=1))
    assert index == out / "index.html"
    assert not (out / "stale.txt").exists()
    html = (out / "150627100" / "briefing.html").read_text(encoding="utf-8")
    assert "无达到预警信号标准的天气" in html
    # Notebooks carry no wall-clock execution metadata (reruns give identical files).
    nb = nbformat.read(out / "150627100" / "briefing.ipynb", as_version=4)
    assert "papermill" not in nb.metadata
    assert all("execution" not in c.metadata for c in nb.cells)


def _contents(folder):
    """The deterministic files of a run (run.json holds timings and is left out)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if (
            path.is_file()
            and path.suffix in (".csv", ".json", ".ipynb")
            and path.name != "run.json"
        ):
            out[str(path.relative_to(folder))] = path.read_bytes()
    return out


def test_rerun_is_identical_and_archive_points_latest(quiet, tmp_path):
    root = tmp_path / "archive"
    opts = BriefOptions(towns="阿镇,纳林陶亥镇", jobs=2, archive=str(root), ledger="")
    index = run_briefings(quiet, None, opts)
    run_dir = index.parent
    assert run_dir.name == "20260512T0000Z"  # the quiet-day issue time
    assert (root / "latest").resolve() == run_dir.resolve()
    first = _contents(run_dir)
    assert "150627100/briefing.ipynb" in first and "town_hazards.csv" in first
    run_briefings(quiet, None, opts)
    assert _contents(run_dir) == first  # same inputs, same CSV, JSON and notebooks
    assert not list(root.glob(".*.tmp-*"))  # nothing half-written left behind


def test_progress_is_plain_log_lines_when_not_a_terminal(caplog, monkeypatch):
    import io
    import logging
    import sys

    from cityops.brief import _progress

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    # Handlers other tests' in-process CLI runs left on the logger point at closed streams.
    monkeypatch.setattr(logging.getLogger("cityops"), "handlers", [])
    monkeypatch.setattr(logging.getLogger("cityops"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="cityops"), _progress(["a", "b"]) as report:
        report(1, "a", None)
        report(2, "b", "cell 3 raised ValueError")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["[1/2] a briefing done", "[2/2] b failed: cell 3 raised ValueError"]
    assert sys.stderr.getvalue() == ""  # no bar drawn into a log file


def test_progress_bar_on_a_terminal_still_names_failures(caplog, monkeypatch):
    import io
    import sys

    from cityops.brief import _progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    with _progress(["a", "b", "c"]) as report:
        report(1, "a", None)
        report(2, "b", "kernel died")
        report(3, "c", None)
    text = tty.getvalue()
    assert "briefings" in text and "3/3" in text
    assert "[2/3] b failed: kernel died" in text


def test_a_reused_kernel_gives_the_pages_a_fresh_one_does(quiet, tmp_path):
    """Units run one after another in one kernel (namespace cleared by the template's first
    cell) give the same pages as a unit run alone."""
    both, alone = tmp_path / "both", tmp_path / "alone"
    run_briefings(quiet, both, BriefOptions(towns="150627100,150627104", jobs=1, ledger=""))
    run_briefings(quiet, alone, BriefOptions(towns="150627104", jobs=1, ledger=""))
    page = "150627104/briefing.html"  # units run in the order named: 104 after 100
    assert (both / page).read_bytes() == (alone / page).read_bytes()
