"""The command line's boundary (issue 16): parameters, hostile text, the ledger, the regression
of ``review --forecast RUNFOLDER``.

Every case drives ``cityops`` in a subprocess and asserts the exit status, the one stderr line
and that nothing was created or changed (docs/bad_inputs.md, "Command parameters, hostile text
and the ledger").
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("cityops")
CITYOPS = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "cityops.cli"]
STORM_TOWN = "150627100"  # 阿勒腾席热镇: red rainstorm in july-rainstorm
ISSUED_DIR = "20260710T0000Z"  # july-rainstorm's archive folder


def cityops(*args, env: dict | None = None, cwd=None, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CITYOPS, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "agg", **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def assert_ok(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr


def assert_error(res: subprocess.CompletedProcess, status: int = 2, *words: str) -> str:
    """Exit ``status``, exactly one line on stderr naming ``words``, no traceback."""
    assert res.returncode == status, (res.returncode, res.stderr[-3000:])
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("cityops"), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content (to prove nothing changed)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def drill(tmp_path_factory) -> dict[str, Path]:
    """A scenario forecast, its 'what happened' analysis and a drill ledger."""
    folder = tmp_path_factory.mktemp("boundary")
    paths = {
        "forecast": folder / "fc.nc",
        "observed": folder / "obs.nc",
        "ledger": folder / "drill.sqlite",
    }
    res = cityops("-q", "scenario", "july-rainstorm", "--out", paths["forecast"],
                  "--observed", paths["observed"], "--ledger", paths["ledger"])  # fmt: skip
    assert_ok(res)
    return paths


# ---------------------------------------------------------------------------------------------
# The regression: review --forecast <run folder | CAP folder | archive root>, no --exercise


@pytest.fixture(scope="module")
def archive(drill, tmp_path_factory) -> Path:
    """``brief --archive ROOT`` of one unit: ROOT/<issued>/ with cap/ and ROOT/latest."""
    root = tmp_path_factory.mktemp("archive") / "runs"
    res = cityops("-q", "brief", drill["forecast"], "--archive", root, "--towns", STORM_TOWN,
                  "--jobs", "1", "--no-ledger")  # fmt: skip
    assert_ok(res)
    assert (root / ISSUED_DIR / "cap").is_dir()
    return root


@pytest.mark.slow
@pytest.mark.parametrize("which", ["run", "cap", "root"])
def test_review_reads_brief_run_folders(drill, archive, tmp_path, which):
    source = {
        "run": archive / ISSUED_DIR,
        "cap": archive / ISSUED_DIR / "cap",
        "root": archive,
    }[which]
    out = tmp_path / "review"
    res = cityops("-q", "review", "--forecast", source, "--observed", drill["observed"],
                  "--out", out, "--no-case")  # fmt: skip
    assert_ok(res)
    assert res.stdout.strip() == str(out / "review.html")
    with (out / "warnings.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rain = [r for r in rows if r["town_code"] == STORM_TOWN and r["hazard"] == "rainstorm"]
    assert rain, rows  # the run's red rainstorm for the storm town was read
    assert max(int(r["level"]) for r in rain) == 4
