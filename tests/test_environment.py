"""environment.yml (conda-forge) mirrors pyproject.toml's dependencies."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import ROOT


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
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    have = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for sub in dep.get("pip", []):
                have.update([_name_bound(sub)])
        elif re.split(r"[<>=\s]", dep)[0] not in ("python", "pip"):
            have.update([_name_bound(dep)])
    assert have == wanted
