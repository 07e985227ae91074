"""Output folders and locks (issue 16, "Data loss"): cityops never deletes what it did not write.

Every case drives the ``cityops`` command line in a subprocess and asserts the exit status,
the single stderr line and that the user's files are all still there, byte for byte. Runs that
must publish replace the notebooks by a stub (``CHILD``): the folder machinery is under test,
not the briefings. Cases that need a permission to be missing run without the capabilities
that let root write anywhere (``setpriv``) when the tests run as root, and are skipped where
that is not possible.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import xarray as xr
import yaml

from cityops import fsio
from cityops.resources import package_data
from cityops.scenarios import write_scenario

GOOD = "150627103"
ISSUED = "20260710T0000Z"  # july-rainstorm's fixed issue time

#: Runs ``cityops`` with the briefing notebooks replaced by a stub page.
CHILD = r"""
import sys
from cityops import brief as batch

def stub(code, forecast, stage, opts, final=None, *extra):
    (stage / code).mkdir(parents=True, exist_ok=True)
    (stage / code / "briefing.html").write_text("<html>stub</html>", encoding="utf-8")

batch._run_unit = stub
from cityops.cli import main
sys.exit(main(sys.argv[1:]))
"""

#: As root, a command prefix that drops the capabilities overriding file permissions.
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A folder for the module's files; removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="cityops-output-safety-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def rain(world):
    """The July rainstorm's first 24 h and a rule table of the rainstorm signals only."""
    data = world / "data"
    data.mkdir(mode=0o755)
    full = write_scenario("july-rainstorm", data / "full.nc")
    with xr.open_dataset(full) as ds:
        ds.isel(time=slice(0, 24)).load().to_netcdf(data / "rain.nc")
    full.unlink()
    table = yaml.safe_load(package_data("rules", "tables", "national.yaml").read_text("utf-8"))
    table["hazards"] = {"rainstorm": table["hazards"]["rainstorm"]}
    (data / "rules.yaml").write_text(yaml.safe_dump(table, allow_unicode=True), "utf-8")
    (world / "child.py").write_text(CHILD, encoding="utf-8")
    for path in data.iterdir():
        path.chmod(0o644)
    (world / "child.py").chmod(0o644)
    return data / "rain.nc"


@pytest.fixture
def place(world):
    """A fresh folder for one test."""
    folder = Path(tempfile.mkdtemp(dir=world))
    folder.chmod(0o777)
    return folder


def unprivileged() -> list[str]:
    """The prefix that makes file permissions count (none needed when not root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: file permissions cannot be made to count")
    return UNPRIVILEGED


def cityops(*args, cwd: Path, stub=False, umask=None, unprivileged=False, env=None):
    """Run ``cityops ARGS`` (``-q``); ``stub``: notebooks replaced; ``unprivileged``: file
    permissions count even for root."""
    world = cwd
    while world.parent != world and not (world / "child.py").exists():
        world = world.parent
    argv = [str(world / "child.py")] if stub else ["-m", "cityops.cli"]
    home = cwd / ".home"
    home.mkdir(exist_ok=True)
    home.chmod(0o777)

    def preexec():
        if umask is not None:
            os.umask(umask)

    full_env = {
        **os.environ,
        "MPLBACKEND": "agg",
        "HOME": str(home),
        "MPLCONFIGDIR": str(home),
        "CITYOPS_LEDGER": str(home / "ledger.sqlite"),
        **(env or {}),
    }
    return subprocess.run(
        [*(globals()["unprivileged"]() if unprivileged else []), sys.executable, *argv, "-q"]
        + [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=full_env,
        preexec_fn=preexec,
    )


def brief(rain, out, *extra, **kw):
    rules = rain.parent / "rules.yaml"
    return cityops(
        "brief", rain, "--rules", rules, "--towns", GOOD, "--no-ledger", "--out", out, *extra, **kw
    )


def assess(rain, out, **kw):
    return cityops("assess", rain, "--rules", rain.parent / "rules.yaml", "--out", out, **kw)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def one_error(proc, message: str) -> None:
    """Exit status 2 and exactly one stderr line: ``cityops: error: <message>``."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"cityops: error: {message}"], proc.stderr


def user_folder(folder: Path, rain: Path | None = None) -> dict[str, bytes]:
    """A folder of someone's own files (and the forecast, when given); their contents."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "signals.csv").write_text("town_code,hazard,level,issued_utc\n", encoding="utf-8")
    (folder / "stations.csv").write_text("station_id,lon,lat,time_utc\n", encoding="utf-8")
    (folder / "minutes").mkdir(exist_ok=True)
    (folder / "minutes" / "2026-07-12 meeting.txt").write_text("会议纪要", encoding="utf-8")
    if rain is not None:
        shutil.copy(rain, folder / "fc.nc")
    return snapshot(folder)


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*") if p.name != ".home")


NOT_A_RUN = (
    ": exists and is not a cityops run (no .cityops-run.json); expected a new folder or an "
    "earlier cityops run"
)


# --------------------------------------------------------------------------- never over inputs
def test_brief_into_the_folder_of_its_forecast_is_refused_and_deletes_nothing(rain, place):
    """``cityops brief /data/ec/fc.nc --out /data/ec`` (it deleted the forecast and years of
    files): refused before any work."""
    ec = place / "ec"
    before = user_folder(ec, rain)
    proc = brief(ec / "fc.nc", ec, cwd=place)
    one_error(
        proc,
        f"{ec}: holds the input {ec / 'fc.nc'}; the output would replace it "
        "(choose an output folder that holds no input)",
    )
    assert snapshot(ec) == before
    assert hidden_leftovers(place) == []


def test_output_folder_above_an_input_is_refused(rain, place):
    data = place / "data"
    before = user_folder(data / "ec" / "2026", rain)
    proc = brief(data / "ec" / "2026" / "fc.nc", data, cwd=place)
    one_error(
        proc,
        f"{data}: holds the input {data / 'ec' / '2026' / 'fc.nc'}; the output would replace it "
        "(choose an output folder that holds no input)",
    )
    assert snapshot(data / "ec" / "2026") == before


def test_output_folder_holding_the_history_is_refused(rain, place):
    keep = place / "keep"
    keep.mkdir()
    history = keep / "history.nc"
    history.write_bytes(b"years of daily data")
    proc = cityops("brief", rain, "--history", history, "--out", keep, cwd=place)
    one_error(
        proc,
        f"{keep}: holds the input {history}; the output would replace it "
        "(choose an output folder that holds no input)",
    )
    assert history.read_bytes() == b"years of daily data"


def test_output_folder_holding_the_ledger_is_refused(rain, place):
    """The ledger is kept across runs: a run folder holding it would lose it on a rerun."""
    out = place / "run"
    ledger = out / "ledger.sqlite"
    proc = cityops("brief", rain, "--ledger", ledger, "--out", out, cwd=place)
    one_error(
        proc,
        f"{out}: holds the input {ledger}; the output would replace it "
        "(choose an output folder that holds no input)",
    )
    assert not out.exists()


def test_review_into_its_event_folder_is_refused_and_keeps_the_minutes(rain, place):
    """A review written into its event folder deleted signals.csv, stations.csv and the
    minutes."""
    event = place / "event"
    before = user_folder(event)
    proc = cityops(
        "review", "--forecast", event / "signals.csv", "--observed", event / "stations.csv",
        "--out", event, "--no-case", cwd=place,
    )  # fmt: skip
    one_error(
        proc,
        f"{event}: holds the input {event / 'signals.csv'}; the output would replace it "
        "(choose an output folder that holds no input)",
    )
    assert snapshot(event) == before


def test_assess_into_the_folder_of_its_forecast_is_refused(rain, place):
    ec = place / "ec"
    before = user_folder(ec, rain)
    one_error(
        assess(ec / "fc.nc", ec, cwd=place),
        f"{ec}: holds the input {ec / 'fc.nc'}; the output would replace it "
        "(choose an output folder that holds no input)",
    )
    assert snapshot(ec) == before


# --------------------------------------------------------------------------- not a cityops run
@pytest.mark.parametrize("command", ["brief", "review", "assess"])
def test_a_folder_that_is_not_a_cityops_run_is_refused(rain, place, command):
    mine = place / "mine"
    before = user_folder(mine)
    if command == "brief":
        proc = brief(rain, mine, cwd=place)
    elif command == "assess":
        proc = assess(rain, mine, cwd=place)
    else:
        proc = cityops(
            "review", "--forecast", rain, "--observed", rain, "--out", mine, "--no-case",
            cwd=place,
        )  # fmt: skip
    one_error(proc, f"{mine}{NOT_A_RUN}")
    assert snapshot(mine) == before
    assert hidden_leftovers(place) == []


@pytest.mark.parametrize("command", ["brief", "review", "assess"])
def test_out_at_an_existing_file_is_refused_not_hidden_away(rain, place, command):
    target = place / "report.txt"
    target.write_text("my notes", encoding="utf-8")
    if command == "brief":
        proc = brief(rain, target, cwd=place)
    elif command == "assess":
        proc = assess(rain, target, cwd=place)
    else:
        proc = cityops(
            "review", "--forecast", rain, "--observed", rain, "--out", target, "--no-case",
            cwd=place,
        )  # fmt: skip
    one_error(
        proc,
        f"{target}: exists and is a file; expected a folder (a new one or an earlier cityops run)",
    )
    assert target.read_text(encoding="utf-8") == "my notes"
    assert hidden_leftovers(place) == []  # no .report.txt.old-PID


def test_a_run_of_another_kind_is_refused(rain, place):
    out = place / "levels"
    assert assess(rain, out, cwd=place).returncode == 0
    before = snapshot(out)
    proc = brief(rain, out, cwd=place)
    one_error(
        proc,
        f"{out}: is a cityops assess run; expected a new folder or an earlier cityops brief run",
    )
    assert snapshot(out) == before


# --------------------------------------------------------------------------- what may be replaced
def test_empty_folder_then_rerun_over_the_earlier_run(rain, place):
    out = place / "run"
    out.mkdir()
    proc = brief(rain, out, cwd=place, stub=True)
    assert proc.returncode == 0, proc.stderr
    marker = json.loads((out / fsio.MARKER).read_text(encoding="utf-8"))
    assert marker["kind"] == "brief" and marker["cityops_version"]
    assert (out / GOOD / "briefing.html").exists()
    assert "files" in marker and f"{GOOD}/briefing.html" in marker["files"]
    # A file someone put into the earlier run is not cityops': the rerun stops, keeps it.
    (out / "minutes.txt").write_text("会议纪要", encoding="utf-8")
    before = snapshot(out)
    proc = brief(rain, out, cwd=place, stub=True)
    one_error(
        proc,
        f"{out}: is a cityops brief run but also holds what cityops did not write "
        "(minutes.txt); expected an unchanged earlier run: move those out or choose another "
        "--out",
    )
    assert snapshot(out) == before
    (out / "minutes.txt").unlink()
    proc = brief(rain, out, cwd=place, stub=True)
    assert proc.returncode == 0, proc.stderr
    assert hidden_leftovers(place) == [".run.lock"]


def test_a_marker_copied_into_a_user_folder_does_not_open_it(rain, place):
    """A run's marker copied into someone's folder lists the run's files, not theirs."""
    run = place / "a-run"
    assert assess(rain, run, cwd=place).returncode == 0
    mine = place / "mine"
    contents = user_folder(mine)
    shutil.copy(run / fsio.MARKER, mine / fsio.MARKER)
    proc = assess(rain, mine, cwd=place)
    assert proc.returncode == 2 and "did not write" in proc.stderr, proc.stderr
    assert {k: v for k, v in snapshot(mine).items() if k != fsio.MARKER} == contents


def test_missing_parent_folders_are_made(rain, place):
    out = place / "new" / "deeper" / "run"
    proc = assess(rain, out, cwd=place)
    assert proc.returncode == 0, proc.stderr
    assert (out / "town_hazards.csv").exists()


def test_a_run_of_an_older_cityops_without_marker_is_recognised_by_its_run_json(rain, place):
    out = place / "old"
    out.mkdir()
    legacy = {"cityops_version": "0.9", "inputs": [], "issued": "x", "units": [], "failures": {}}
    (out / "run.json").write_text(json.dumps(legacy), encoding="utf-8")
    (out / "index.html").write_text("<html>old</html>", encoding="utf-8")
    proc = brief(rain, out, cwd=place, stub=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / fsio.MARKER).exists()
    assert (out / "index.html").read_text() != "<html>old</html>"


def test_a_run_json_of_something_else_is_not_a_run(rain, place):
    out = place / "other"
    out.mkdir()
    (out / "run.json").write_text('{"name": "my run"}', encoding="utf-8")
    one_error(brief(rain, out, cwd=place), f"{out}{NOT_A_RUN}")
    assert (out / "run.json").read_text(encoding="utf-8") == '{"name": "my run"}'


def test_assess_publishes_a_marked_folder_and_replaces_its_own(rain, place):
    out = place / "assess"
    proc = assess(rain, out, cwd=place)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [fsio.MARKER, "levels.nc", "town_hazards.csv", "town_hazards.json"]
    assert json.loads((out / fsio.MARKER).read_text())["kind"] == "assess"
    assert assess(rain, out, cwd=place).returncode == 0
    assert hidden_leftovers(place) == [".assess.lock"]


# --------------------------------------------------------------------------- archive and latest
def test_latest_being_a_real_folder_is_refused_before_publishing(rain, place):
    root = place / "archive"
    before = user_folder(root / "latest")
    proc = cityops(
        "brief", rain, "--rules", rain.parent / "rules.yaml", "--towns", GOOD, "--no-ledger",
        "--archive", root, cwd=place, stub=True,
    )  # fmt: skip
    one_error(
        proc,
        f"{root / 'latest'}: is a real folder, not the symbolic link cityops keeps to the "
        "newest run; move it away (cityops never replaces it)",
    )
    assert snapshot(root / "latest") == before
    assert sorted(p.name for p in root.iterdir()) == ["latest"]  # no run, no .latest.PID


def test_archive_publishes_the_run_and_points_latest(rain, place):
    root = place / "archive"
    args = ("--archive", root)
    for _ in range(2):
        proc = cityops(
            "brief", rain, "--rules", rain.parent / "rules.yaml", "--towns", GOOD,
            "--no-ledger", *args, cwd=place, stub=True,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert os.readlink(root / "latest") == ISSUED
    assert sorted(p.name for p in root.iterdir()) == [f".{ISSUED}.lock", ISSUED, "latest"]


def test_archive_at_a_file_is_refused(rain, place):
    root = place / "archive"
    root.write_text("not a folder")
    proc = cityops("brief", rain, "--towns", GOOD, "--archive", root, cwd=place)
    one_error(proc, f"{root}: --archive: exists and is a file; expected an archive folder")
    assert root.read_text() == "not a folder"


# --------------------------------------------------------------------------- permissions
def _read_only(folder: Path) -> Path:
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("command", ["brief", "review", "assess"])
def test_out_at_an_unwritable_place_exits_2(rain, place, command):
    ro = _read_only(place / "ro")
    out = ro / "run"
    if command == "brief":
        proc = brief(rain, out, cwd=place, unprivileged=True)
    elif command == "assess":
        proc = assess(rain, out, cwd=place, unprivileged=True)
    else:
        proc = cityops(
            "review", "--forecast", rain, "--observed", rain, "--out", out, "--no-case",
            cwd=place, unprivileged=True,
        )  # fmt: skip
    one_error(proc, f"{out}: cannot be written ({ro}: permission denied)")
    assert list(ro.iterdir()) == []


def test_archive_root_without_permission_exits_2(rain, place):
    ro = _read_only(place / "ro")
    root = ro / "archive"
    proc = cityops(
        "brief", rain, "--rules", rain.parent / "rules.yaml", "--towns", GOOD, "--no-ledger",
        "--archive", root, cwd=place, unprivileged=True,
    )  # fmt: skip
    one_error(proc, f"{root}: cannot be written ({ro}: permission denied)")


@pytest.mark.parametrize("command", ["brief", "assess"])
def test_run_lock_without_permission_exits_2(rain, place, command):
    out = place / "levels"
    lock = place / ".levels.lock"
    lock.write_text("")
    lock.chmod(0o444)
    run = brief if command == "brief" else assess
    proc = run(rain, out, cwd=place, unprivileged=True)
    one_error(proc, f"{lock}: cannot open the run lock (Permission denied)")
    assert not out.exists()


def test_run_lock_that_cannot_be_opened_exits_2(rain, place):
    """The lock's name taken by a folder (root may open anything else)."""
    out = place / "run"
    (place / ".run.lock").mkdir()
    proc = brief(rain, out, cwd=place, stub=True)
    one_error(proc, f"{place / '.run.lock'}: cannot open the run lock (Is a directory)")
    assert not out.exists()


# --------------------------------------------------------------------------- the run lock
def test_lock_held_by_a_live_run_times_out_naming_the_holder(rain, place):
    out = place / "run"
    with fsio.run_lock(out):  # another run holds it: this test process
        proc = brief(rain, out, "--lock-timeout", "1", cwd=place, stub=True)
    lock = place / ".run.lock"
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(
        f"cityops: error: {lock}: run lock held by another cityops run (pid {os.getpid()} on "
        f"{socket.gethostname()}, since "
    ), line
    assert line.endswith(
        "for more than 1 s; wait for it to finish, or stop it, or set --lock-timeout / "
        "$CITYOPS_LOCK_TIMEOUT"
    ), line
    assert not out.exists()


def test_lock_left_by_a_dead_process_is_reported_and_taken_over(rain, place):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = place / ".run.lock"
    record = {"pid": dead.pid, "host": socket.gethostname(), "started_utc": "2026-07-10T00:05:00Z"}
    lock.write_text(json.dumps(record))
    proc = brief(rain, place / "run", cwd=place, stub=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"cityops: run lock {lock} was left by pid {dead.pid} on {socket.gethostname()}, since "
        "2026-07-10T00:05:00Z, which is no longer running: taking it over"
    ]
    assert lock.read_text() == ""  # released: no holder named


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_bad_lock_timeout_is_refused(rain, place, value):
    proc = brief(rain, place / "run", "--lock-timeout", value, cwd=place)
    one_error(proc, f"--lock-timeout {float(value)!r}: expected a number of seconds >= 0")


# --------------------------------------------------------------------------- modes
def modes(folder: Path) -> set[tuple[str, int]]:
    found = {("dir", stat.S_IMODE(folder.stat().st_mode))}
    for path in folder.rglob("*"):
        kind = "dir" if path.is_dir() else "file"
        found.add((kind, stat.S_IMODE(path.stat().st_mode)))
    return found


@pytest.mark.parametrize(("umask", "dirs", "files"), [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)])
def test_outputs_follow_the_umask(rain, place, umask, dirs, files):
    run, levels = place / "run", place / "levels"
    assert brief(rain, run, cwd=place, stub=True, umask=umask).returncode == 0
    assert assess(rain, levels, cwd=place, umask=umask).returncode == 0
    assert modes(run) == {("dir", dirs), ("file", files)}
    assert modes(levels) == {("dir", dirs), ("file", files)}
    export = place / "tasks.csv"
    proc = cityops(
        "tasks", "export", "--out", export, cwd=place, umask=umask,
        env={"CITYOPS_LEDGER": str(place / "l.sqlite")},
    )  # fmt: skip
    if proc.returncode == 0:  # a ledger to export (creating one is the ledger's business)
        assert stat.S_IMODE(export.stat().st_mode) == files


# --------------------------------------------------------------------------- the file writer
def test_atomic_path_leaves_nothing_on_error_and_keeps_the_target(tmp_path):
    target = tmp_path / "keep.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), fsio.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv"]
    fsio.write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv"]


def test_publish_puts_the_earlier_run_back_when_the_new_one_cannot_go_in(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    fsio.write_marker(out, "brief")
    (out / "index.html").write_text("earlier")
    stage = fsio.make_stage(out)
    calls = []

    def stop():
        calls.append(1)
        if len(calls) == 2:  # after the earlier run went aside
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fsio.publish_folder(stage, out, "brief", checkpoint=stop)
    assert (out / "index.html").read_text() == "earlier"
    assert not list(tmp_path.glob(".run.old-*"))
