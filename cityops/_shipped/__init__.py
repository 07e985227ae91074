"""The repository's data folders that travel inside the wheel.

The repository keeps the jurisdictions in ``data/jurisdictions/<name>/`` and the notebook
templates in ``templates/`` (architecture.md, interfaces.md §8). Building a wheel copies them
into this package (``cityops/_shipped/jurisdictions``, ``cityops/_shipped/templates``: see
``setup.py``), so an installed cityops works from any folder. An editable install
(``pip install -e .``) copies nothing: :func:`shipped_folders` then finds the repository's own
folders beside the package.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["REPOSITORY_FOLDERS", "shipped_folders"]

#: Where each shipped folder lives in the repository (the source of the wheel's copy).
REPOSITORY_FOLDERS = {"jurisdictions": ("data", "jurisdictions"), "templates": ("templates",)}


def shipped_folders(name: str) -> list[Path]:
    """Folders holding the shipped ``name`` (``"jurisdictions"`` or ``"templates"``), in order:
    the copy inside the installed package, then the source checkout's (editable install).
    Only existing folders are listed."""
    found: list[Path] = []
    packaged = resources.files(__name__).joinpath(name)
    if isinstance(packaged, Path) and packaged.is_dir():
        found.append(packaged)
    root = Path(__file__).resolve().parents[2]  # the repository, in a source checkout
    checkout = root.joinpath(*REPOSITORY_FOLDERS[name])
    if (root / "pyproject.toml").is_file() and checkout.is_dir() and checkout not in found:
        found.append(checkout)
    return found
