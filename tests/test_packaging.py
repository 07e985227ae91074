"""Packaging (issue 16): the wheel carries the jurisdictions and the notebook templates, and an
installed cityops works from a folder outside the repository; ``python -m cityops`` works.

The wheel is built from an sdist made from a copy of the working tree's files (what a clone
holds, plus new files not yet committed), so the build never writes into the repository and
MANIFEST.in is checked on the way. No build isolation: the venv's setuptools builds it (the
``test`` extra requires it), offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

PY = sys.executable
STORM_TOWN = "150627100"  # 阿勒腾席热镇


def _env(**extra: str) -> dict[str, str]:
    """The environment without anything that would point cityops at the repository."""
    drop = {"PYTHONPATH", "CITYOPS_JURISDICTIONS", "CITYOPS_TEMPLATES", "CITYOPS_FORECAST_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "MPLBACKEND": "agg", **extra}


def _run(args, *, cwd, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _shipped_sources() -> dict[str, list[str]]:
    """Repository files the wheel must carry, as paths inside ``cityops/_shipped/``."""
    found: dict[str, list[str]] = {}
    for folder, inside in (("data/jurisdictions", "jurisdictions"), ("templates", "templates")):
        base = ROOT / folder
        found[inside] = sorted(
            f"{inside}/{p.relative_to(base).as_posix()}"
            for p in base.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") or part == "__pycache__" for part in p.parts)
        )
    return found


# ---------------------------------------------------------------------------------------------
def test_python_m_cityops():
    res = _run([PY, "-m", "cityops", "--help"], cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: cityops")
    res = _run([PY, "-m", "cityops", "--no-such-option"], cwd=ROOT)
    assert res.returncode == 2  # the command's own status, not the interpreter's
    assert res.stderr.startswith("cityops: error:")


def test_license_file_matches_declared_licence():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "Copyright (c) cityops contributors" in text


# ---------------------------------------------------------------------------------------------
# The wheel


def _working_tree_copy(dest: Path) -> Path:
    """The files a clone would hold (tracked, or new and not ignored) that exist now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if name.startswith(("tests/", "notebooks/", "benchmarks/", "docs/")):
            continue  # not part of a build
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(sdist, wheel) built from a copy of the working tree."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know the working tree's files")
    from importlib.metadata import version

    from packaging.version import Version

    assert Version(version("setuptools")) >= Version("77"), (
        "the build needs setuptools>=77 in the venv (the test extra: make install)"
    )
    tmp = tmp_path_factory.mktemp("packaging")
    src = _working_tree_copy(tmp / "src")
    dist = tmp / "dist"
    res = _run(
        [
            PY,
            "-c",
            f"from setuptools import build_meta; print(build_meta.build_sdist({str(dist)!r}))",
        ],
        cwd=src,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    sdist = dist / res.stdout.strip().splitlines()[-1]
    res = _run(
        [PY, "-m", "pip", "wheel", sdist, "--no-deps", "--no-build-isolation", "-w", dist],
        cwd=tmp,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (wheel,) = dist.glob("cityops-*.whl")
    return sdist, wheel


@pytest.mark.slow
def test_sdist_and_wheel_carry_jurisdictions_and_templates(built):
    sdist, wheel = built
    with tarfile.open(sdist) as tar:
        in_sdist = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
    shipped = _shipped_sources()
    assert any(p.startswith("jurisdictions/ejin-horo/") for p in shipped["jurisdictions"])
    assert any(p.startswith("jurisdictions/kangbashi/") for p in shipped["jurisdictions"])
    assert {"templates/town_briefing.ipynb", "templates/post_event_review.ipynb"} <= set(
        shipped["templates"]
    )
    for name in shipped["jurisdictions"]:
        assert f"data/{name}" in in_sdist, name
        assert f"cityops/_shipped/{name}" in in_wheel, name
    for name in shipped["templates"]:
        assert name in in_sdist, name
        assert f"cityops/_shipped/{name}" in in_wheel, name
    assert {"setup.py", "LICENSE", "MANIFEST.in"} <= in_sdist
    assert "data/samples" not in {p.rsplit("/", 1)[0] for p in in_sdist}
    assert "cityops/__main__.py" in in_wheel
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in in_wheel)
    # the package's own data files are still there
    assert "cityops/data/variables.yaml" in in_wheel
    assert not any(n.startswith(("tests/", "data/")) for n in in_wheel)


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """The wheel installed (no dependencies: the venv's serve) into a folder of its own, and
    a working folder outside the repository."""
    _, wheel = built
    tmp = tmp_path_factory.mktemp("installed")
    site = tmp / "site"
    res = _run([PY, "-m", "pip", "install", "--no-deps", "--target", site, wheel], cwd=tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    work = tmp / "elsewhere"
    work.mkdir()
    assert not work.resolve().is_relative_to(ROOT)
    return site, work, _env(PYTHONPATH=str(site))


@pytest.mark.slow
def test_installed_wheel_works_outside_the_repository(installed):
    site, work, env = installed
    res = _run([PY, "-c", "import cityops; print(cityops.__file__)"], cwd=work, env=env)
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()).resolve().is_relative_to(site.resolve())

    res = _run([PY, "-m", "cityops", "scenario", "--list"], cwd=work, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "july-rainstorm" in res.stdout

    res = _run([PY, "-m", "cityops", "-q", "scenario", "quiet-day", "--out", "q.nc"], cwd=work, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]

    script = site / "bin" / "cityops"  # the console script pip wrote beside the package
    for name in ("ejin-horo", "kangbashi"):  # hanggin: outside the sample grid
        res = _run([PY, script, "assess", "q.nc", "--jurisdiction", name, "--out", f"out-{name}"], cwd=work, env=env)  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        assert (work / f"out-{name}" / "town_hazards.csv").is_file()
        assert str(ROOT) not in res.stderr  # nothing read from the repository
        if name == "ejin-horo":  # its asset register is named in a note: the shipped copy
            shipped = site.resolve() / "cityops" / "_shipped" / "jurisdictions" / name
            assert f"{shipped}/assets.csv" in res.stderr, res.stderr[-3000:]

    res = _run([PY, "-m", "cityops", "assess", "q.nc", "--jurisdiction", "atlantis", "--out", "x"], cwd=work, env=env)  # fmt: skip
    assert res.returncode == 2
    assert "available: ejin-horo, hanggin, kangbashi" in res.stderr


@pytest.mark.slow
def test_installed_wheel_briefs_with_the_shipped_template(installed):
    """One town's briefing through papermill: the notebook template comes from the wheel."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("cityops")
    except NoSuchKernel:
        pytest.skip("Jupyter kernel 'cityops' not installed (make kernel)")
    _, work, env = installed
    forecast = work / "brief.nc"
    res = _run([PY, "-m", "cityops", "-q", "scenario", "july-rainstorm", "--out", forecast], cwd=work, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    res = _run(
        [PY, "-m", "cityops", "-q", "brief", forecast, "--towns", STORM_TOWN, "--jobs", "1",
         "--no-ledger", "--out", "brief"],
        cwd=work, env=env, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert (work / "brief" / "index.html").is_file()
    assert (work / "brief" / STORM_TOWN).is_dir()
    assert str(ROOT) not in res.stderr
