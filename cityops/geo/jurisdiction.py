"""Jurisdictions: the response units (towns, zones) of a county, their codes, names and polygons.

Everything place-specific lives in a folder ``data/jurisdictions/<name>/`` (``spec/interfaces.md``
§8)::

    jurisdiction.yaml   name, code, names, timezone, files, sources, optional property mapping,
                        extreme-weather criteria and response plan (or null: none of its own)
    outline.geojson     the county outline (Polygon or MultiPolygon, WGS-84 lon/lat)
    units.geojson       one feature per unit: code, name_zh, name_en, aliases, kind, approximate,
                        seat_lon, seat_lat (geometry may be null: a unit without a polygon)

A user's real boundary file can replace ``units.geojson`` unchanged: ``properties:`` in
``jurisdiction.yaml`` maps our field names to the file's property names (``code: adcode``,
``name_zh: name``) and ``defaults:`` supplies fields the file lacks (``kind: town``).

Geometries are WGS-84 longitude/latitude. Areas are computed on a Lambert azimuthal equal-area
projection centred on the jurisdiction, after densifying edges to 0.01° so that straight
lon/lat edges are followed closely.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from cityops.errors import DataFileError, InputError
from cityops.geo.policy import LevelPolicy, level_policy
from cityops.resources import load_yaml, package_data

__all__ = [
    "UNIT_KINDS",
    "ExtremeCriteria",
    "Jurisdiction",
    "ResponsePlanInfo",
    "Unit",
    "equal_area_km2",
    "jurisdiction_search_path",
    "load_jurisdiction",
    "to_equal_area",
]

logger = logging.getLogger(__name__)

#: Kinds of response unit a jurisdiction file may declare (``spec/interfaces.md`` §8).
UNIT_KINDS: tuple[str, ...] = ("town", "subdistrict", "sumu", "zone", "park")

#: Our field names; ``properties:`` in ``jurisdiction.yaml`` may map them to other names.
UNIT_FIELDS: tuple[str, ...] = (
    "code",
    "name_zh",
    "name_en",
    "aliases",
    "kind",
    "approximate",
    "seat_lon",
    "seat_lat",
)

#: Columns of :meth:`Jurisdiction.units_frame`.
UNITS_FRAME_COLUMNS: tuple[str, ...] = (
    "code",
    "name_zh",
    "name_en",
    "kind",
    "approximate",
    "seat_lon",
    "seat_lat",
    "area_km2",
    "has_geometry",
)

#: Environment variable with extra folders (``os.pathsep``-separated) holding jurisdictions.
ENV_VAR = "CITYOPS_JURISDICTIONS"

#: Longest edge, in degrees, before projecting a geometry to compute areas.
_DENSIFY_DEG = 0.01

Geometry = shapely.Polygon | shapely.MultiPolygon


# --------------------------------------------------------------------------------------------
# Equal-area projection helpers
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _laea_transformer(lon0: float, lat0: float) -> pyproj.Transformer:
    crs = pyproj.CRS.from_proj4(
        f"+proj=laea +lat_0={lat0} +lon_0={lon0} +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
    )
    return pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)


def to_equal_area(geometry: Any, centre: tuple[float, float], *, densify: bool = True) -> Any:
    """Project WGS-84 lon/lat geometries to a Lambert azimuthal equal-area plane (metres).

    Parameters
    ----------
    geometry : shapely geometry or array of geometries
        Geometries in longitude/latitude degrees.
    centre : tuple of float
        ``(lon0, lat0)`` of the projection centre, in degrees.
    densify : bool, default True
        Insert vertices so that no edge is longer than 0.01° before projecting, so that a
        straight lon/lat edge stays close to its image.

    Returns
    -------
    shapely geometry or numpy.ndarray
        The projected geometries (same shape as the input).
    """
    lon0, lat0 = (round(float(c), 6) for c in centre)
    transformer = _laea_transformer(lon0, lat0)
    if densify:
        geometry = shapely.segmentize(geometry, _DENSIFY_DEG)

    def _project(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geometry, _project)


def equal_area_km2(geometry: Any, centre: tuple[float, float]) -> Any:
    """Area in km² of lon/lat geometries, on an equal-area projection centred at ``centre``.

    Parameters
    ----------
    geometry : shapely geometry or array of geometries
        Geometries in longitude/latitude degrees (``None`` entries give 0).
    centre : tuple of float
        ``(lon0, lat0)`` of the Lambert azimuthal equal-area projection, in degrees.

    Returns
    -------
    float or numpy.ndarray
        Areas in km².

    Examples
    --------
    >>> import shapely
    >>> round(equal_area_km2(shapely.box(110.0, 39.0, 110.1, 39.1), (110.05, 39.05)), 1)
    96.1
    """
    projected = to_equal_area(geometry, centre)
    area = shapely.area(projected) / 1e6
    if np.ndim(area) == 0:
        return float(np.nan_to_num(area))
    return np.nan_to_num(area)


# --------------------------------------------------------------------------------------------
# What a jurisdiction declares of its own: extreme-weather criteria, response plan
# --------------------------------------------------------------------------------------------
#: Suffixes of a rule-table file named by ``extreme_criteria.rules`` (else a shipped name).
_RULE_FILE_SUFFIXES: tuple[str, ...] = (".yaml", ".yml")


@dataclass(frozen=True)
class ExtremeCriteria:
    """A jurisdiction's own extreme-weather criteria (``extreme_criteria:`` in its yaml).

    Attributes
    ----------
    rules : str
        A shipped rule table's name (e.g. ``"ejin-horo-annex3"``) or the absolute path of a
        YAML rule table (given relative to the jurisdiction folder); each hazard's level 1
        is "extreme".
    name_zh, name_en : str
        The criteria's name as the reports print it, e.g. ``伊金霍洛旗极端天气判定标准（附件3）``.
    source : str
        Where the criteria come from (document, seed lines).
    """

    rules: str
    name_zh: str
    name_en: str
    source: str

    def name(self, lang: str = "zh") -> str:
        """The name in the report language (``zh`` or ``en``)."""
        return self.name_zh if lang == "zh" else self.name_en


@dataclass(frozen=True)
class ResponsePlanInfo:
    """A jurisdiction's response plan (``response_plan:`` in its yaml).

    Attributes
    ----------
    name_zh, name_en : str
        The plan document's name (empty when an undeclared ``plan/`` folder is used).
    folder : pathlib.Path or None
        The plan tables (groups, measures, timing…; :func:`cityops.response.load_plan`), or
        ``None`` when the document is named but has no tables loaded (declared ``null``, or
        the declared folder is absent: logged as a warning): no posture, no tasks.
    source : str
        Where the plan comes from.
    """

    name_zh: str
    name_en: str
    folder: Path | None
    source: str

    @property
    def loaded(self) -> bool:
        """True when the plan's tables are loaded (postures and tasks can be derived)."""
        return self.folder is not None

    def name(self, lang: str = "zh") -> str:
        """The name in the report language (``zh`` or ``en``)."""
        return self.name_zh if lang == "zh" else self.name_en


# --------------------------------------------------------------------------------------------
# Units and jurisdictions
# --------------------------------------------------------------------------------------------
def _normalise(name: str) -> str:
    """Key used to match names: NFKC (full-width → ASCII), case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", str(name)).casefold().split())


@dataclass(frozen=True)
class Unit:
    """One response unit of a jurisdiction (a town, sub-district, sumu, zone or park).

    Attributes
    ----------
    code : str
        GB/T 2260 / statistical code, or a local code such as ``150627L01``.
    name_zh, name_en : str
        Chinese and English names.
    aliases : tuple of str
        Other names of the unit itself (not of places inside it).
    kind : str
        One of :data:`UNIT_KINDS`.
    approximate : bool
        True when the polygon or seat is an approximation (e.g. a Voronoi cell).
    seat_lon, seat_lat : float or None
        Seat (or representative point) in WGS-84 degrees.
    geometry : shapely.Polygon or shapely.MultiPolygon or None
        Outline in WGS-84 lon/lat; ``None`` for a unit with no known location.
    geometry_source : {"polygon", "seat_disc", "none"}
        Where ``geometry`` comes from: the units file, a disc around the seat of a unit with
        no polygon (the jurisdiction's level policy sets its radius; always approximate), or
        nothing (no polygon and no seat: the unit cannot be assessed).
    """

    code: str
    name_zh: str
    name_en: str = ""
    aliases: tuple[str, ...] = ()
    kind: str = "town"
    approximate: bool = False
    seat_lon: float | None = None
    seat_lat: float | None = None
    geometry: Geometry | None = field(default=None, repr=False)
    geometry_source: str = "polygon"

    @property
    def seat_disc(self) -> bool:
        """True when the unit is assessed on a disc around its seat (it has no polygon)."""
        return self.geometry_source == "seat_disc"

    @property
    def has_geometry(self) -> bool:
        """True when the unit has a (non-empty) polygon."""
        return self.geometry is not None and not self.geometry.is_empty

    @property
    def names(self) -> tuple[str, ...]:
        """Code, Chinese name, English name and aliases: every key that resolves to this unit."""
        return tuple(n for n in (self.code, self.name_zh, self.name_en, *self.aliases) if n)

    def __str__(self) -> str:
        return f"{self.name_zh} ({self.code})"


def _name_index(units: Sequence[Unit]) -> dict[str, int]:
    """Map normalised names to unit positions; ``ValueError(i, j, name)`` on a clash."""
    index: dict[str, int] = {}
    for i, unit in enumerate(units):
        for name in unit.names:
            key = _normalise(name)
            j = index.setdefault(key, i)
            if j != i:
                raise ValueError(j, i, name)
    return index


@dataclass(frozen=True, eq=False)
class Jurisdiction:
    """A county-level jurisdiction: its outline and response units.

    Immutable (it is cached per folder by :func:`load_jurisdiction`); compared and hashed by
    identity.

    Attributes
    ----------
    name : str
        Folder name, e.g. ``"ejin-horo"``.
    code : str
        GB/T 2260 code of the county, e.g. ``"150627"``.
    name_zh, name_en : str
        Chinese and English names.
    timezone : str
        IANA time zone used in reports, e.g. ``"Asia/Shanghai"``.
    outline : shapely.Polygon or shapely.MultiPolygon
        County outline, WGS-84 lon/lat.
    units : tuple of Unit
        Response units, in file order.
    path : pathlib.Path
        Folder the jurisdiction was read from.
    name_traps : Mapping[str, str]
        Names that look like a unit's but are not (name → explanation), used in error messages.
    sources : tuple of str
        Where the data come from.
    extreme_criteria : ExtremeCriteria or None
        The jurisdiction's own extreme-weather criteria; ``None``: it has none (only the
        national signal levels apply, and no row is flagged extreme).
    response_plan : ResponsePlanInfo or None
        The jurisdiction's response plan; ``None``: it has none (no posture, no tasks).
    """

    name: str
    code: str
    name_zh: str
    name_en: str
    timezone: str
    outline: Geometry = field(repr=False)
    units: tuple[Unit, ...] = field(repr=False)
    path: Path
    name_traps: Mapping[str, str] = field(default_factory=dict, repr=False)
    sources: tuple[str, ...] = field(default=(), repr=False)
    extreme_criteria: ExtremeCriteria | None = field(default=None, repr=False)
    response_plan: ResponsePlanInfo | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", tuple(self.units))
        traps = {_normalise(k): (k, str(v)) for k, v in dict(self.name_traps).items()}
        object.__setattr__(self, "name_traps", MappingProxyType(dict(self.name_traps)))
        try:
            index = _name_index(self.units)
        except ValueError as err:
            j, i, name = err.args
            raise InputError(
                f"jurisdiction {self.name}: name {name!r} is used by both unit "
                f"{self.units[j].code} and unit {self.units[i].code}"
            ) from None
        object.__setattr__(self, "_index", MappingProxyType(index))
        object.__setattr__(self, "_traps", MappingProxyType(traps))

    @property
    def policy(self) -> LevelPolicy:
        """How a unit gets its level (``level_policy.yaml`` of the folder over the default)."""
        return level_policy(self.path)

    # ---- look-up -------------------------------------------------------------------------
    @property
    def codes(self) -> tuple[str, ...]:
        """Unit codes in file order."""
        return tuple(u.code for u in self.units)

    def unit(self, key: str | int | Unit) -> Unit:
        """Find a unit by code, Chinese or English name, or alias.

        Matching ignores case, surrounding whitespace and full-width/half-width differences.

        Parameters
        ----------
        key : str, int or Unit
            ``"150627100"``, ``"阿勒腾席热镇"``, ``"阿镇"``, ``"Altan Xiret Town"``…

        Returns
        -------
        Unit

        Raises
        ------
        InputError
            Unknown key; the one-line message explains known name traps and lists close
            matches.

        Examples
        --------
        >>> load_jurisdiction("ejin-horo").unit("阿镇").code
        '150627100'
        """
        if isinstance(key, Unit):
            key = key.code
        norm = _normalise(key)
        pos = self._index.get(norm)  # type: ignore[attr-defined]
        if pos is not None:
            return self.units[pos]
        parts = [f"unknown unit {str(key)!r} in jurisdiction {self.name}"]
        trap = self._traps.get(norm)  # type: ignore[attr-defined]
        if trap is not None:
            parts.append(f"{trap[0]} is {trap[1]}")
        candidates = {}
        for u in self.units:
            for n in u.names:
                candidates.setdefault(n, u)
        close = difflib.get_close_matches(str(key), list(candidates), n=5, cutoff=0.4)
        if close:
            parts.append(
                "close matches: " + ", ".join(f"{n} ({candidates[n].code})" for n in close)
            )
        else:
            parts.append("known units: " + ", ".join(str(u) for u in self.units))
        raise InputError("; ".join(parts))

    def __contains__(self, key: object) -> bool:
        if isinstance(key, Unit):
            key = key.code
        return isinstance(key, str | int) and _normalise(key) in self._index  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Unit]:
        return iter(self.units)

    def __len__(self) -> int:
        return len(self.units)

    # ---- geometry ------------------------------------------------------------------------
    @property
    def centre(self) -> tuple[float, float]:
        """``(lon, lat)`` centre of the outline's bounding box: the equal-area projection centre."""
        lon_min, lat_min, lon_max, lat_max = self.outline.bounds
        return (round((lon_min + lon_max) / 2, 4), round((lat_min + lat_max) / 2, 4))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(lon_min, lat_min, lon_max, lat_max)`` of the outline and all unit polygons."""
        geoms = [self.outline, *(u.geometry for u in self.units if u.has_geometry)]
        return tuple(float(v) for v in shapely.total_bounds(geoms))  # type: ignore[return-value]

    def area_km2(self, what: Unit | str | BaseGeometry | None = None) -> float:
        """Area in km² on an equal-area projection centred on the jurisdiction.

        Parameters
        ----------
        what : Unit, str, shapely geometry or None
            A unit (or a key accepted by :meth:`unit`), any lon/lat geometry, or ``None`` for
            the outline.

        Returns
        -------
        float
            Area in km²; NaN for a unit without geometry.
        """
        if what is None:
            geom = self.outline
        elif isinstance(what, BaseGeometry):
            geom = what
        else:
            unit = self.unit(what)
            if not unit.has_geometry:
                return math.nan
            geom = unit.geometry
        return float(equal_area_km2(geom, self.centre))

    @cached_property
    def _unit_areas(self) -> tuple[float, ...]:
        geoms = np.array([u.geometry for u in self.units], dtype=object)
        areas = equal_area_km2(geoms, self.centre) if len(geoms) else np.array([])
        return tuple(
            float(a) if u.has_geometry else math.nan for a, u in zip(areas, self.units, strict=True)
        )

    def units_frame(self) -> pd.DataFrame:
        """One row per unit: code, names, kind, flags, seat and area.

        Returns
        -------
        pandas.DataFrame
            Columns ``code, name_zh, name_en, kind, approximate, seat_lon, seat_lat, area_km2,
            has_geometry`` (``area_km2`` is NaN for units without geometry, ``seat_*`` NaN when
            unknown), in file order.
        """
        rows = [
            {
                "code": u.code,
                "name_zh": u.name_zh,
                "name_en": u.name_en,
                "kind": u.kind,
                "approximate": u.approximate,
                "seat_lon": math.nan if u.seat_lon is None else u.seat_lon,
                "seat_lat": math.nan if u.seat_lat is None else u.seat_lat,
                "area_km2": area,
                "has_geometry": u.has_geometry,
            }
            for u, area in zip(self.units, self._unit_areas, strict=True)
        ]
        frame = pd.DataFrame(rows, columns=list(UNITS_FRAME_COLUMNS))
        frame.attrs.update(jurisdiction=self.name, area_km2="equal-area projection")
        return frame

    def __repr__(self) -> str:
        return (
            f"Jurisdiction({self.name!r}, code={self.code!r}, name_zh={self.name_zh!r}, "
            f"units={len(self.units)}, path={str(self.path)!r})"
        )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def jurisdiction_search_path() -> list[Path]:
    """Folders searched for jurisdiction names, in order.

    ``$CITYOPS_JURISDICTIONS`` (``os.pathsep``-separated), ``./data/jurisdictions``, then the
    jurisdictions shipped with cityops: the copy inside the installed package (a wheel), or the
    repository's ``data/jurisdictions`` (a source checkout or editable install).
    """
    from cityops._shipped import shipped_folders

    dirs = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    dirs.append(Path.cwd() / "data" / "jurisdictions")
    dirs.extend(shipped_folders("jurisdictions"))
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def _available(dirs: Sequence[Path]) -> list[str]:
    names: set[str] = set()
    for d in dirs:
        if d.is_dir():
            names.update(p.parent.name for p in d.glob("*/jurisdiction.yaml"))
    return sorted(names)


def _resolve(name_or_path: str | Path) -> Path:
    if (
        isinstance(name_or_path, Path)
        or any(s in name_or_path for s in ("/", os.sep, "~"))
        or (name_or_path.startswith("."))
    ):
        path = Path(name_or_path).expanduser()
        if path.is_file() and path.name == "jurisdiction.yaml":
            path = path.parent
        if not (path / "jurisdiction.yaml").is_file():
            raise InputError(f"{path}: not a jurisdiction folder (no jurisdiction.yaml in it)")
        return path.resolve()
    name = str(name_or_path).strip()
    if not name:
        raise InputError("empty jurisdiction name")
    dirs = jurisdiction_search_path()
    for d in dirs:
        if (d / name / "jurisdiction.yaml").is_file():
            return (d / name).resolve()
    available = _available(dirs) or ["none"]
    raise InputError(
        f"unknown jurisdiction {name!r}; available: {', '.join(available)} "
        f"(searched ${ENV_VAR}, ./data/jurisdictions and the jurisdictions shipped with cityops)"
    )


def _stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    """Modification stamp of a folder's files, so that an edited file is re-read."""
    return tuple(
        (p.name, p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(path.iterdir())
        if p.is_file()
    )


def load_jurisdiction(name_or_path: str | Path = "ejin-horo") -> Jurisdiction:
    """Load and validate a jurisdiction folder.

    Parameters
    ----------
    name_or_path : str or pathlib.Path, default ``"ejin-horo"``
        A folder (a :class:`~pathlib.Path`, or a string containing a path separator or
        starting with ``.`` or ``~``), or a name looked up in ``$CITYOPS_JURISDICTIONS``
        (``os.pathsep``-separated folders), ``./data/jurisdictions`` and the repository's
        ``data/jurisdictions``.

    Returns
    -------
    Jurisdiction
        Cached per resolved folder (re-read when a file in the folder changes).

    Raises
    ------
    InputError
        Unknown name (the message lists the available ones) or not a jurisdiction folder.
    DataFileError
        A file failed validation; the one-line message names the file, the feature index and
        the field.

    Notes
    -----
    A seat outside its own polygon, or a unit reaching outside the outline, is logged as a
    warning (approximate data), not an error. Invalid geometries are rejected, not repaired.

    Examples
    --------
    >>> ejin_horo = load_jurisdiction("ejin-horo")
    >>> len(ejin_horo.units), ejin_horo.unit("阿镇").name_zh
    (10, '阿勒腾席热镇')
    """
    path = _resolve(name_or_path)
    return _load_cached(path, _stamp(path))


@lru_cache(maxsize=16)
def _load_cached(path: Path, stamp: tuple) -> Jurisdiction:
    return _load(path)


load_jurisdiction.cache_clear = _load_cached.cache_clear  # type: ignore[attr-defined]


def _text(value: Any, where: str, *, required: bool = True) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataFileError(f"{where}: missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DataFileError(f"{where}: expected a string, got {value!r}")
    return str(value).strip()


def _load(path: Path) -> Jurisdiction:
    yaml_path = path / "jurisdiction.yaml"
    meta = load_yaml(yaml_path)
    name = _text(meta.get("name"), f"{yaml_path}: field 'name'")
    code = _text(meta.get("code"), f"{yaml_path}: field 'code'")
    name_zh = _text(meta.get("name_zh"), f"{yaml_path}: field 'name_zh'")
    name_en = _text(meta.get("name_en"), f"{yaml_path}: field 'name_en'", required=False)
    timezone = _text(meta.get("timezone"), f"{yaml_path}: field 'timezone'")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataFileError(
            f"{yaml_path}: field 'timezone': unknown time zone {timezone!r}; expected an IANA "
            "name such as Asia/Shanghai"
        ) from None
    sources = meta.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise DataFileError(f"{yaml_path}: field 'sources': expected a non-empty list of strings")
    files = meta.get("files")
    if not isinstance(files, dict) or not files.get("units"):
        raise DataFileError(f"{yaml_path}: field 'files': expected a mapping with 'units'")
    mapping = _mapping(meta.get("properties"), f"{yaml_path}: field 'properties'")
    unknown = sorted(set(mapping) - set(UNIT_FIELDS) - {"not_aliases"})
    if unknown:
        raise DataFileError(
            f"{yaml_path}: field 'properties': unknown field(s) {', '.join(unknown)} "
            f"(known: {', '.join(UNIT_FIELDS)})"
        )
    defaults = _mapping(meta.get("defaults"), f"{yaml_path}: field 'defaults'")
    traps = _mapping(meta.get("name_traps"), f"{yaml_path}: field 'name_traps'")

    units_path = path / str(files["units"])
    units, unit_traps = _read_units(units_path, mapping, defaults)
    units = _with_seat_discs(units, level_policy(path).seat_disc_km)
    traps = {**unit_traps, **traps}
    if files.get("outline"):
        outline_path = path / str(files["outline"])
        outline = _read_outline(outline_path)
    else:
        geoms = [u.geometry for u in units if u.has_geometry]
        if not geoms:
            raise DataFileError(f"{yaml_path}: no 'outline' file and no unit has a geometry")
        outline = shapely.union_all(geoms)
        outline_path = units_path

    extreme_criteria = _extreme_criteria(meta, path, yaml_path)
    response_plan = _response_plan(meta, path, yaml_path)

    jurisdiction = Jurisdiction(
        name=name,
        code=code,
        name_zh=name_zh,
        name_en=name_en,
        timezone=timezone,
        outline=outline,
        units=tuple(units),
        path=path,
        name_traps={str(k): str(v) for k, v in traps.items()},
        sources=tuple(sources),
        extreme_criteria=extreme_criteria,
        response_plan=response_plan,
    )
    _warn_geometry(jurisdiction, units_path)
    return jurisdiction


def _declared(meta: Mapping[str, Any], key: str, yaml_path: Path) -> dict[str, Any] | None:
    """The mapping under ``key`` (None when the key is null); one-line error otherwise."""
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DataFileError(
            f"{yaml_path}: field {key!r}: expected a mapping (name_zh, name_en, source, …) or "
            f"null (none of its own), got {value!r}"
        )
    return {str(k): v for k, v in value.items()}


def _extreme_criteria(
    meta: Mapping[str, Any], path: Path, yaml_path: Path
) -> ExtremeCriteria | None:
    """``extreme_criteria:``: a rule table and its name, or null / absent (none of its own)."""
    data = _declared(meta, "extreme_criteria", yaml_path)
    if data is None:
        return None
    where = f"{yaml_path}: field 'extreme_criteria"
    unknown = sorted(set(data) - {"rules", "name_zh", "name_en", "source"})
    if unknown:
        raise DataFileError(
            f"{where}': unknown field(s) {', '.join(unknown)} (known: rules, name_zh, name_en, "
            "source)"
        )
    rules = _text(data.get("rules"), f"{where}.rules'")
    if rules.endswith(_RULE_FILE_SUFFIXES):
        file = (path / rules).resolve()
        if not file.is_file():
            raise DataFileError(f"{where}.rules': rule table {file} not found")
        rules = str(file)
    else:
        shipped = package_data("rules", "tables", f"{rules}.yaml")
        if not shipped.is_file():
            names = sorted(p.stem for p in shipped.parent.glob("*.yaml"))
            raise DataFileError(
                f"{where}.rules': unknown rule table {rules!r}; expected a shipped name "
                f"({', '.join(names)}) or a .yaml file in the jurisdiction folder"
            )
    return ExtremeCriteria(
        rules=rules,
        name_zh=_text(data.get("name_zh"), f"{where}.name_zh'"),
        name_en=_text(data.get("name_en"), f"{where}.name_en'"),
        source=_text(data.get("source"), f"{where}.source'"),
    )


def _response_plan(meta: Mapping[str, Any], path: Path, yaml_path: Path) -> ResponsePlanInfo | None:
    """``response_plan:``: the plan's name and tables folder (or null: none). Absent, a
    ``plan/`` folder beside the yaml is used unnamed (folders written before the field)."""
    if "response_plan" not in meta:
        if (path / "plan").is_dir():
            return ResponsePlanInfo(name_zh="", name_en="", folder=path / "plan", source="plan/")
        return None
    data = _declared(meta, "response_plan", yaml_path)
    if data is None:
        return None
    where = f"{yaml_path}: field 'response_plan"
    unknown = sorted(set(data) - {"folder", "name_zh", "name_en", "source"})
    if unknown:
        raise DataFileError(
            f"{where}': unknown field(s) {', '.join(unknown)} (known: folder, name_zh, name_en, "
            "source)"
        )
    folder = None
    if data.get("folder") is not None:
        folder = (path / _text(data.get("folder"), f"{where}.folder'")).resolve()
        if not folder.is_dir():
            # A copy of a jurisdiction without its plan still runs, saying the plan is not
            # loaded (as a folder without plan/ always did); the log names the field.
            logger.warning(
                "%s.folder': %s is not a folder; the plan's tables are not loaded (no posture, "
                "no tasks)",
                where,
                folder,
            )
            folder = None
    return ResponsePlanInfo(
        name_zh=_text(data.get("name_zh"), f"{where}.name_zh'"),
        name_en=_text(data.get("name_en"), f"{where}.name_en'"),
        folder=folder,
        source=_text(data.get("source"), f"{where}.source'"),
    )


def seat_disc(lon: float, lat: float, radius_km: float) -> Geometry:
    """A disc of ``radius_km`` around a seat, drawn in an equal-area plane centred on it and
    returned in WGS-84 lon/lat (128 vertices)."""
    transformer = _laea_transformer(round(float(lon), 6), round(float(lat), 6))
    disc = shapely.Point(0.0, 0.0).buffer(radius_km * 1000.0, quad_segs=32)

    def _back(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1], direction="INVERSE")
        return np.column_stack([x, y])

    return shapely.transform(disc, _back)


def _with_seat_discs(units: list[Unit], radius_km: float) -> list[Unit]:
    """Units without a polygon but with a seat get a disc around the seat (approximate);
    units with neither keep no geometry (``geometry_source="none"``)."""
    out = []
    for unit in units:
        if unit.has_geometry:
            out.append(unit)
        elif unit.seat_lon is not None and unit.seat_lat is not None:
            geom = seat_disc(unit.seat_lon, unit.seat_lat, radius_km)
            out.append(replace(unit, geometry=geom, geometry_source="seat_disc", approximate=True))
        else:
            out.append(replace(unit, geometry=None, geometry_source="none"))
    return out


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DataFileError(f"{where}: expected a mapping")
    return {str(k): v for k, v in value.items()}


def _read_geojson(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path}: not valid GeoJSON ({err})") from None
    if not isinstance(data, dict):
        raise DataFileError(f"{path}: not a GeoJSON object")
    crs = data.get("crs")
    if crs is not None:
        crs_name = (
            str((crs.get("properties") or {}).get("name", "")) if isinstance(crs, dict) else ""
        )
        if not any(tag in crs_name.upper() for tag in ("CRS84", "4326")):
            raise DataFileError(
                f"{path}: coordinates must be WGS-84 longitude/latitude, file declares crs "
                f"{crs_name or crs!r}"
            )
    return data


def _features(data: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    kind = data.get("type")
    if kind == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise DataFileError(f"{path}: FeatureCollection without a 'features' list")
        return features
    if kind == "Feature":
        return [data]
    raise DataFileError(f"{path}: expected a GeoJSON FeatureCollection or Feature, got {kind!r}")


def _geometry(raw: Any, where: str) -> Geometry | None:
    """Parse and check one GeoJSON geometry (None stays None)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in ("Polygon", "MultiPolygon"):
        got = raw.get("type") if isinstance(raw, dict) else type(raw).__name__
        raise DataFileError(
            f"{where}: field 'geometry': expected Polygon or MultiPolygon, got {got}"
        )
    try:
        geom = shapely.from_geojson(json.dumps(raw))
    except Exception as err:  # shapely raises GEOSException or ValueError on bad coordinates
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataFileError(f"{where}: field 'geometry': unreadable ({msg})") from None
    if geom.is_empty:
        raise DataFileError(f"{where}: field 'geometry': empty (use null for a unit without one)")
    lon_min, lat_min, lon_max, lat_max = geom.bounds
    if not (-180 <= lon_min and lon_max <= 180 and -90 <= lat_min and lat_max <= 90):
        raise DataFileError(
            f"{where}: field 'geometry': coordinates outside lon -180..180 / lat -90..90 "
            f"(bounds {geom.bounds}); expected WGS-84 longitude, latitude"
        )
    if not shapely.is_valid(geom):
        raise DataFileError(
            f"{where}: field 'geometry': invalid ({shapely.is_valid_reason(geom)}); expected a "
            "valid polygon (no self-intersection): fix the file, e.g. with shapely.make_valid"
        )
    return geom


def _read_outline(path: Path) -> Geometry:
    data = _read_geojson(path)
    if data.get("type") in ("Polygon", "MultiPolygon"):
        geoms = [_geometry(data, f"{path}")]
    else:
        geoms = [
            _geometry(f.get("geometry") if isinstance(f, dict) else None, f"{path}: feature {i}")
            for i, f in enumerate(_features(data, path))
        ]
    geoms = [g for g in geoms if g is not None]
    if not geoms:
        raise DataFileError(f"{path}: no outline polygon")
    outline = geoms[0] if len(geoms) == 1 else shapely.union_all(geoms)
    if not isinstance(outline, shapely.Polygon | shapely.MultiPolygon):
        raise DataFileError(f"{path}: outline is not a polygon")
    return outline


def _read_units(
    path: Path, mapping: Mapping[str, Any], defaults: Mapping[str, Any]
) -> tuple[list[Unit], dict[str, str]]:
    """Units of a GeoJSON file, and the name traps of its ``not_aliases`` properties."""
    features = _features(_read_geojson(path), path)
    if not features:
        raise DataFileError(f"{path}: no features")
    units: list[Unit] = []
    traps: dict[str, str] = {}
    seen: dict[str, int] = {}
    for i, feature in enumerate(features):
        where = f"{path}: feature {i}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise DataFileError(f"{where}: not a GeoJSON Feature")
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raise DataFileError(f"{where}: field 'properties': expected an object")

        def get(fld: str, props: dict = props) -> tuple[Any, str]:
            key = str(mapping.get(fld, fld))
            label = f"field {fld!r}" if key == fld else f"field {fld!r} (property {key!r})"
            value = props.get(key)
            if value is None:
                value = defaults.get(fld)
            return value, label

        value, label = get("code")
        code = _text(value, f"{where}: {label}")
        if not (
            code.isascii() and code[:1].isalnum() and all(c.isalnum() or c in "_.-" for c in code)
        ):
            raise DataFileError(f"{where}: {label}: code {code!r} is not ASCII letters, digits, "
                                "'_', '.', '-' (codes name output folders)")  # fmt: skip
        if code in seen:
            raise DataFileError(
                f"{where}: {label}: duplicate code {code!r} (also feature {seen[code]})"
            )
        seen[code] = i
        value, label = get("name_zh")
        name_zh = _text(value, f"{where}: {label}")
        value, label = get("name_en")
        name_en = _text(value, f"{where}: {label}", required=False)
        value, label = get("aliases")
        aliases = _aliases(value, f"{where}: {label}")
        value, label = get("kind")
        kind = _text(value, f"{where}: {label}").lower()
        if kind not in UNIT_KINDS:
            raise DataFileError(
                f"{where}: {label}: unknown kind {kind!r} (allowed: {', '.join(UNIT_KINDS)})"
            )
        value, label = get("approximate")
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise DataFileError(f"{where}: {label}: expected true or false, got {value!r}")
        approximate = value
        seat = []
        for fld, lo, hi in (("seat_lon", -180, 180), ("seat_lat", -90, 90)):
            value, label = get(fld)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise DataFileError(f"{where}: {label}: expected a number, got {value!r}")
                if not lo <= value <= hi:
                    raise DataFileError(f"{where}: {label}: {value} is outside {lo}..{hi}")
                value = float(value)
            seat.append(value)
        if (seat[0] is None) != (seat[1] is None):
            raise DataFileError(f"{where}: field 'seat_lon'/'seat_lat': give both or neither")
        value, label = get("not_aliases")
        for trap in _aliases(value, f"{where}: {label}"):
            traps.setdefault(trap, f"not a name of {name_zh} ({code})")
        geometry = _geometry(feature.get("geometry"), where)
        units.append(
            Unit(
                code=code,
                name_zh=name_zh,
                name_en=name_en,
                aliases=aliases,
                kind=kind,
                approximate=approximate,
                seat_lon=seat[0],
                seat_lat=seat[1],
                geometry=geometry,
            )
        )
    try:
        _name_index(units)
    except ValueError as err:
        j, i, name = err.args
        raise DataFileError(
            f"{path}: feature {i}: name or alias {name!r} is also used by feature {j} "
            f"({units[j].code})"
        ) from None
    return units, traps


def _aliases(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # GIS tools often cannot store lists: accept "a, b; c、d"
        for sep in (";", "、", "，", "；"):
            value = value.replace(sep, ",")
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataFileError(f"{where}: expected a list of strings")
    return tuple(dict.fromkeys(v.strip() for v in value if v.strip()))


def _warn_geometry(jurisdiction: Jurisdiction, units_path: Path) -> None:
    """Log (do not raise) doubtful but usable geometry: seats outside their unit, units outside."""
    outline = jurisdiction.outline
    shapely.prepare(outline)
    for i, unit in enumerate(jurisdiction.units):
        if not unit.has_geometry:
            continue
        if unit.seat_lon is not None and unit.seat_lat is not None:
            seat = shapely.Point(unit.seat_lon, unit.seat_lat)
            if not unit.geometry.covers(seat):
                logger.warning(
                    "%s: feature %d (%s): seat %.4f, %.4f lies outside its own polygon",
                    units_path,
                    i,
                    unit,
                    unit.seat_lon,
                    unit.seat_lat,
                )
        if not outline.covers(unit.geometry):
            outside = jurisdiction.area_km2(unit.geometry.difference(outline))
            total = jurisdiction.area_km2(unit.geometry)
            if total > 0 and outside > 0.01 * total:
                logger.warning(
                    "%s: feature %d (%s): %.0f %% of the unit lies outside the outline",
                    units_path,
                    i,
                    unit,
                    100 * outside / total,
                )
