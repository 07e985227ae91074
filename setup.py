"""Build hook: ship the repository's ``data/jurisdictions`` and ``templates`` in the wheel.

All metadata is in pyproject.toml. The two folders stay where the spec puts them in the
repository; building a wheel copies them into ``cityops/_shipped/`` so that an installed
cityops finds them from any folder (``cityops._shipped.shipped_folders``). An editable install
copies nothing: the package then reads the repository's folders directly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import FileError

ROOT = Path(__file__).resolve().parent
#: folder in the repository -> folder inside the package (cityops/_shipped/REPOSITORY_FOLDERS)
SHIPPED = {
    "data/jurisdictions": "cityops/_shipped/jurisdictions",
    "templates": "cityops/_shipped/templates",
}


def _shipped_files(build_lib: str) -> list[tuple[Path, Path]]:
    """(source, target) of every file to ship; hidden files and caches are left out."""
    pairs = []
    for source, target in SHIPPED.items():
        src = ROOT / source
        if not src.is_dir():
            raise FileError(f"{src}: missing; the wheel must ship it (is the sdist complete?)")
        for folder, dirs, files in os.walk(src):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for name in sorted(files):
                if name.startswith(".") or name.endswith((".pyc", "~")):
                    continue
                path = Path(folder, name)
                pairs.append((path, Path(build_lib, target, path.relative_to(src))))
    return pairs


class BuildPyShipped(build_py):
    """``build_py`` that also copies the shipped folders (not in an editable install)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for target in SHIPPED.values():  # a reused build/ must not keep files since removed
            shutil.rmtree(Path(self.build_lib, target), ignore_errors=True)
        for src, dst in _shipped_files(self.build_lib):
            self.mkpath(str(dst.parent))
            self.copy_file(str(src), str(dst), preserve_mode=False)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [str(dst) for _, dst in _shipped_files(self.build_lib)]


setup(cmdclass={"build_py": BuildPyShipped})
