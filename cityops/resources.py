"""Locating and validating the package's data files (YAML with a ``source``)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cityops.errors import DataFileError

__all__ = ["canonical_variables", "load_yaml", "package_data"]


def package_data(*parts: str) -> Path:
    """Path of a file shipped inside the ``cityops`` package."""
    return Path(str(resources.files("cityops").joinpath(*parts)))


#: libyaml's safe loader where PyYAML was built with it (the PyPI wheels are): the same
#: documents and errors as the pure-Python one, about ten times faster -- an assessment reads
#: some twenty data files (rules, plan, registers), which took most of its time.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, raising a one-line :class:`DataFileError` on any problem."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            loader = _SAFE_LOADER(fh)  # what yaml.safe_load does, with the C safe loader
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataFileError(f"{path}: is a folder; expected a YAML file") from None
    except UnicodeDecodeError as err:
        raise DataFileError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "expected a UTF-8 YAML file (a GBK file converts with: iconv -f GBK -t UTF-8)"
        ) from None
    except OSError as err:
        raise DataFileError(f"{path}: cannot read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise DataFileError(
            f"{path}:{where} is not valid YAML ({getattr(err, 'problem', err)})"
        ) from None
    if not isinstance(data, dict):
        raise DataFileError(f"{path}: expected a YAML mapping at the top level")
    return data


@cache
def canonical_variables() -> dict[str, dict[str, str]]:
    """The canonical variable registry (``cityops/data/variables.yaml``)."""
    path = package_data("data", "variables.yaml")
    data = load_yaml(path)
    variables = data.get("variables")
    if not isinstance(variables, dict):
        raise DataFileError(f"{path}: missing 'variables' mapping")
    for name, spec in variables.items():
        if not isinstance(spec, dict) or "units" not in spec:
            raise DataFileError(f"{path}: variable {name!r} lacks 'units'")
    return variables
