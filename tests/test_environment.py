"""The environment itself: environment.yml (conda-forge) mirrors pyproject.toml's
dependencies, and plain scripts (no cityops) using xarray, cfgrib, ecCodes and pyproj exit 0
in any import order (docs/process_health.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib

import pytest
import yaml

from tests.conftest import ROOT

# Where environment.yml differs on purpose (its comments say why): conda-forge ships
# python-eccodes only up to the 2.4x series and findlibs 0.1.2, and there ecCodes and pyproj
# link one shared PROJ, so the PyPI wheels' pins against a second, bundled PROJ do not apply.
CONDA_DIFFERS = {"eccodes": ">=2.37", "findlibs": ""}


def _name_bound(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    name = m.group(1).lower().replace("_", "-")
    # conda-forge names that differ from PyPI's
    return {"python-eccodes": "eccodes"}.get(name, name), m.group(2).replace(" ", "")


def test_environment_yml_in_step_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = dict(
        map(_name_bound, project["dependencies"] + project["optional-dependencies"]["test"])
    )
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    env = yaml.safe_load(text)
    have = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for sub in dep.get("pip", []):
                have.update([_name_bound(sub)])
        elif re.split(r"[<>=\s]", dep)[0] not in ("python", "pip"):
            have.update([_name_bound(dep)])
    assert set(CONDA_DIFFERS) <= set(wanted)  # a difference, not an extra package
    assert have == {**wanted, **CONDA_DIFFERS}
    # Each deliberate difference is explained by a comment just above its line.
    lines = text.splitlines()
    for name in CONDA_DIFFERS:
        conda_name = {"eccodes": "python-eccodes"}.get(name, name)
        (i,) = [i for i, ln in enumerate(lines) if re.match(rf"\s*- {conda_name}\b", ln)]
        assert lines[i - 1].strip().startswith("#"), f"environment.yml: explain {conda_name}"


def test_version_floors_that_work():
    """Floors measured to install and import (issue 16): scores 2.x needs scipy~=1.13; pint
    0.24.0-0.24.3 do not import with flexparser 0.4; findlibs 0.1.3 crashes at exit."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = {Requirement(d).name.lower(): Requirement(d).specifier for d in project["dependencies"]}
    for name, bad, good in [
        ("scipy", "1.12.0", "1.13.0"),
        ("pint", "0.24.3", "0.24.4"),
        ("findlibs", "0.1.3", "0.1.4"),
    ]:
        assert Version(bad) not in specs[name], (name, bad)
        assert Version(good) in specs[name], (name, good)


# ---------------------------------------------------------------------------------------------
# Plain scripts: what a notebook user or a script writer runs, with no cityops import (cityops
# imports pyproj first and so would hide the hazard). With findlibs 0.1.3 each of these but
# "pyproj then eccodes" ended in a segmentation fault or abort at exit (139/134).

PLAIN = {
    "xarray_netcdf": """
        import numpy as np, xarray as xr
        xr.Dataset({"t": (("y", "x"), np.arange(6.0).reshape(2, 3))}).to_netcdf("plain.nc")
        with xr.open_dataset("plain.nc") as ds:  # engine guessed: every backend is listed
            assert float(ds["t"].sum()) == 15.0
    """,
    "eccodes_then_pyproj": """
        import eccodes
        import pyproj
        assert pyproj.CRS(4326).name == "WGS 84"
        eccodes.codes_get_api_version()
    """,
    "pyproj_then_eccodes": """
        import pyproj
        import eccodes
        assert pyproj.CRS(4326).name == "WGS 84"
        eccodes.codes_get_api_version()
    """,
    "grib_via_cfgrib_then_pyproj": """
        import xarray as xr
        ds = xr.open_dataset(GRIB, engine="cfgrib", backend_kwargs={
            "indexpath": "", "filter_by_keys": {"typeOfLevel": "meanSea"}})
        assert float(ds["prmsl"].isel(step=0).mean()) == 100000.0
        import pyproj
        t = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)
        x, y = t.transform(110.0, 39.5)
        assert round(x) == 12245144, x
    """,
    "grib_engine_guessed_then_pyproj": """
        import xarray as xr
        ds = xr.open_dataset(GRIB, backend_kwargs={
            "indexpath": "", "filter_by_keys": {"typeOfLevel": "meanSea"}})
        assert "prmsl" in ds
        import pyproj
        assert pyproj.CRS("EPSG:32649").name.startswith("WGS 84")
    """,
    "cfgrib_then_pyproj": """
        import cfgrib
        import pyproj
        t = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)
        assert round(t.transform(110.0, 39.5)[0]) == 12245144
    """,
    "xarray_engines_then_pyproj": """
        import xarray as xr
        xr.backends.list_engines()
        import pyproj
        assert pyproj.CRS("EPSG:4326").name == "WGS 84"
    """,
}


@pytest.fixture(scope="module")
def grib_file(tmp_path_factory):
    from tests.grib_fixtures import write_gfs_like

    return write_gfs_like(tmp_path_factory.mktemp("plain") / "plain.grib2", upper_air=False)


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_script_exits_0(name, grib_file, tmp_path):
    code = f"GRIB = {str(grib_file)!r}\n" + textwrap.dedent(PLAIN[name])
    code += "import sys\nassert 'cityops' not in sys.modules\nprint('done')\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code],  # the venv's interpreter, no cityops on the path
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # A crash at exit shows as -6 (abort, "double free or corruption"; 134 in a shell) or -11
    # (segmentation fault; 139), sometimes after the work has printed "done".
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-500:], proc.stderr[-3000:])
    assert proc.stdout.strip().endswith("done"), proc.stderr[-3000:]
    assert "PROJ" not in proc.stderr, proc.stderr[-3000:]


# ---------------------------------------------------------------------------------------------
# The Jupyter kernelspec follows the umask (issue 16: installed 0700, other accounts' notebook
# servers could not see the kernel). Installed under a temporary prefix, never the real one.


@pytest.mark.parametrize(("umask", "others_read"), [(0o022, True), (0o077, False)])
def test_kernelspec_follows_umask(umask, others_read, tmp_path):
    code = textwrap.dedent(f"""
        import os, sys
        os.umask({umask:#o})
        sys.prefix = {str(tmp_path)!r}  # install_kernel installs into sys.prefix
        from cityops.report.kernel import install_kernel
        print(install_kernel("cityops-umask-test", "umask test"))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    dest = tmp_path / "share" / "jupyter" / "kernels" / "cityops-umask-test"
    assert proc.stdout.strip() == str(dest)
    spec = dest / "kernel.json"
    assert yaml.safe_load(spec.read_text(encoding="utf-8"))["argv"][0] == sys.executable
    for path in [dest, *dest.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert mode == expected, (path, oct(mode), oct(expected))
    assert bool(spec.stat().st_mode & 0o004) is others_read
    assert bool(dest.stat().st_mode & 0o005 == 0o005) is others_read
