"""What ``import cityops.pipeline`` pulls in (issue #17: import <= 1 s, measured in
benchmarks/): the heavy libraries a run may never need load on first use, not at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

LAZY = ("metpy", "pint", "scipy", "matplotlib", "dask.array", "papermill", "nbconvert")


@pytest.mark.parametrize("module", ["cityops.pipeline", "cityops.cli"])
def test_import_leaves_heavy_libraries_for_first_use(module):
    code = f"import sys, {module}; print(','.join(m for m in {LAZY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    assert done.stdout.strip() == ""


def test_units_still_convert_after_a_lazy_import():
    from cityops import units

    q = units.parse_quantity("25 mm", where="test")
    assert units.convert_quantity(q, "kg m-2") == pytest.approx(25.0)
    assert units.ureg is units.registry()  # the registry, on first use
