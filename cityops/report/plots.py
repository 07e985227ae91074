"""Figures for the briefing: level maps, the town meteogram, the headline card.

Maps draw only vector data shipped with the jurisdiction (outline and unit polygons); nothing
is downloaded. Level colours are those of the national signals (``cityops/data/levels.yaml``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath
from shapely.geometry.base import BaseGeometry

from cityops.i18n import level_label, t
from cityops.report.fonts import configure_cjk_font
from cityops.rules.table import level_names
from cityops.timeutil import REPORT_TZ

__all__ = [
    "condition_series",
    "engine_value",
    "headline_card",
    "level_colours",
    "level_map",
    "meteogram",
    "meteogram_data",
    "town_series",
]


def level_colours() -> list[str]:
    names = level_names()
    return [names[i]["colour"] for i in range(5)]


def _cmap():
    colours = level_colours()
    colours[0] = "#F4F4F4"
    return ListedColormap(colours), BoundaryNorm(np.arange(-0.5, 5.5, 1), 5)


def _geom_patch(geom: BaseGeometry, **kw) -> PathPatch:
    polys = getattr(geom, "geoms", [geom])
    verts, codes = [], []
    for poly in polys:
        for ring in [poly.exterior, *poly.interiors]:
            xy = np.asarray(ring.coords)
            verts.extend(xy.tolist())
            codes.extend([MplPath.MOVETO] + [MplPath.LINETO] * (len(xy) - 2) + [MplPath.CLOSEPOLY])
    return PathPatch(MplPath(verts, codes), **kw)


def _local(times) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(times).tz_localize("UTC").tz_convert(REPORT_TZ).tz_localize(None)


def max_level_field(assessment, hazard: str | None = None) -> xr.DataArray:
    """Highest level over the forecast per cell, for one hazard or all (max over members)."""
    fields = [
        r.level for r in assessment.levels if r.evaluated and (hazard is None or r.hazard == hazard)
    ]
    if not fields:
        first = assessment.forecast[next(iter(assessment.forecast.data_vars))]
        return xr.zeros_like(first.isel(time=0), dtype="int8")
    out = fields[0].max("time")
    for f in fields[1:]:
        out = np.maximum(out, f.max("time"))
    if "member" in out.dims:
        out = out.max("member")
    return out.compute()


def level_map(
    assessment,
    *,
    hazard: str | None = None,
    highlight: str | None = None,
    lang: str = "zh",
    figsize: tuple[float, float] = (7.0, 5.6),
    zoom: str | None = None,
) -> Figure:
    """Map of the highest level over the forecast, with unit polygons and names.

    Parameters
    ----------
    assessment : cityops.pipeline.Assessment
    hazard : str, optional
        One hazard; default the highest level of all hazards.
    highlight : str, optional
        Unit code drawn with a thick outline.
    zoom : str, optional
        Unit code to centre on (the unit and its neighbours).
    """
    configure_cjk_font()
    juris = assessment.jurisdiction
    field = max_level_field(assessment, hazard)
    cmap, norm = _cmap()
    fig = Figure(figsize=figsize, dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.pcolormesh(
        field["lon"],
        field["lat"],
        field.values,
        cmap=cmap,
        norm=norm,
        shading="nearest",
        alpha=0.85,
    )
    ax.add_patch(_geom_patch(juris.outline, facecolor="none", edgecolor="#222222", lw=1.6))
    for unit in juris.units:
        if not unit.has_geometry:
            continue
        is_hl = unit.code == highlight
        ax.add_patch(
            _geom_patch(
                unit.geometry,
                facecolor="none",
                edgecolor="#000000" if is_hl else "#555555",
                lw=2.4 if is_hl else 0.7,
                ls="-" if unit.kind == "town" else "--",
            )
        )
        if unit.seat_lon is not None:
            ax.plot(unit.seat_lon, unit.seat_lat, "o", ms=3, color="#222222")
            name = unit.name_zh if lang == "zh" else unit.name_en
            ax.annotate(
                name,
                (unit.seat_lon, unit.seat_lat),
                parse_math=False,  # a name is data: "$" is not mathtext
                xytext=(3, 3) if unit.kind == "town" else (3, -10),
                textcoords="offset points",
                fontsize=9.5 if is_hl else (8 if unit.kind == "town" else 6.5),
            )
    lon0, lat0, lon1, lat1 = juris.bounds
    if zoom is not None:
        geom = juris.unit(zoom).geometry
        if geom is not None:
            lon0, lat0, lon1, lat1 = geom.buffer(0.15).bounds
    pad = 0.05
    ax.set_xlim(lon0 - pad, lon1 + pad)
    ax.set_ylim(lat0 - pad, lat1 + pad)
    ax.set_aspect(1 / np.cos(np.deg2rad((lat0 + lat1) / 2)))
    ax.set_xlabel("°E")
    ax.set_ylabel("°N")
    times = _local(assessment.forecast["time"].values)
    title_hazard = assessment.levels[hazard].rules.name(lang) if hazard else t("map_all", lang)
    ax.set_title(
        t(
            "map_title",
            lang,
            hazard=title_hazard,
            start=f"{times[0]:%m-%d %H:%M}",
            end=f"{times[-1]:%m-%d %H:%M}",
        ),
        fontsize=10,
        parse_math=False,
    )
    handles = [
        ax.scatter([], [], marker="s", s=60, color=c, label=level_label(i, lang))
        for i, c in enumerate(level_colours())
        if i > 0
    ]
    ax.legend(
        handles=handles,
        loc="lower right",
        fontsize=7,
        title=t("level", lang),
        title_fontsize=7,
        framealpha=0.9,
    )
    return fig


def unit_levels(assessment) -> dict[str, int | None]:
    """Highest level of any evaluated hazard per unit (``None`` when nothing was evaluated)."""
    frame = assessment.table
    out: dict[str, int | None] = {}
    for code, sub in frame.groupby("town_code", sort=False):
        ok = sub[sub["evaluated"].astype(bool)]
        out[str(code)] = int(ok["level"].max()) if len(ok) else None
    return out


def unit_level_map(
    assessment, *, lang: str = "zh", figsize: tuple[float, float] = (7.0, 5.6)
) -> Figure:
    """The banner's units filled with their highest level: the overview a leader reads first."""
    configure_cjk_font()
    juris = assessment.jurisdiction
    colours = level_colours()
    levels = unit_levels(assessment)
    fig = Figure(figsize=figsize, dpi=110, layout="constrained")
    ax = fig.add_subplot()
    # Towns first, zones (which lie inside towns) on top, so both stay visible.
    ordered = sorted((u for u in juris.units if u.has_geometry), key=lambda u: u.kind != "town")
    for unit in ordered:
        level = levels.get(unit.code)
        face = colours[level] if level else "#F4F4F4"
        ax.add_patch(
            _geom_patch(
                unit.geometry,
                facecolor=face,
                edgecolor="#333333",
                lw=0.8,
                ls="-" if unit.kind == "town" else "--",
                hatch=None if level is not None else "//",
            )
        )
    ax.add_patch(_geom_patch(juris.outline, facecolor="none", edgecolor="#111111", lw=1.6))
    # Town labels inside the part of the town outside any zone; zone labels beside their
    # outline, so that a zone's name never covers its town's.
    zones = [u.geometry for u in ordered if u.kind != "town"]
    for unit in ordered:
        name = unit.name_zh if lang == "zh" else unit.name_en
        level = levels.get(unit.code)
        label = f"{name}\n{level_label(level, lang)}" if level else name
        if unit.kind == "town":
            free = unit.geometry
            for zone in zones:
                free = free.difference(zone)
            point = (free if not free.is_empty else unit.geometry).representative_point()
            xy, offset, size = (point.x, point.y), (0, 0), 8
        else:
            lon0_, lat0_, lon1_, _ = unit.geometry.bounds
            xy, offset, size = ((lon0_ + lon1_) / 2, lat0_), (0, -8), 6.5
        ax.annotate(
            label,
            xy,
            parse_math=False,
            xytext=offset,
            textcoords="offset points",
            ha="center",
            va="center" if unit.kind == "town" else "top",
            fontsize=size,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.75},
        )
    lon0, lat0, lon1, lat1 = juris.bounds
    pad = 0.05
    ax.set_xlim(lon0 - pad, lon1 + pad)
    ax.set_ylim(lat0 - pad, lat1 + pad)
    ax.set_aspect(1 / np.cos(np.deg2rad((lat0 + lat1) / 2)))
    ax.set_xlabel("°E")
    ax.set_ylabel("°N")
    times = _local(assessment.forecast["time"].values)
    ax.set_title(
        t(
            "map_units_title",
            lang,
            start=f"{times[0]:%m-%d %H:%M}",
            end=f"{times[-1]:%m-%d %H:%M}",
        ),
        fontsize=10,
    )
    handles = [
        ax.scatter([], [], marker="s", s=60, color=c, label=level_label(i, lang))
        for i, c in enumerate(colours)
        if i > 0
    ]
    ax.legend(
        handles=handles,
        loc="lower right",
        fontsize=7,
        title=t("level", lang),
        title_fontsize=7,
        framealpha=0.9,
    )
    return fig


def _unit_reduce(assessment, code: str, da: xr.DataArray, how: str) -> xr.DataArray | None:
    """A field over the cells counting for a unit (max or min; ensemble median)."""
    touch = assessment.counting_cells.sel(unit=code)
    if not bool(touch.any()):
        return None
    da = da.where(touch)
    da = da.max(["lat", "lon"]) if how == "max" else da.min(["lat", "lon"])
    if "member" in da.dims:
        da = da.median("member")
    return da.compute()


def town_series(assessment, code: str, variable: str, how: str = "max") -> xr.DataArray | None:
    """Series of a forecast variable over the cells touching a unit (max or min; ensemble
    median). The least favourable cell, consistent with how levels are aggregated."""
    ds = assessment.forecast
    if variable not in ds:
        return None
    return _unit_reduce(assessment, code, ds[variable], how)


def engine_value(assessment, variable: str, reduce: str, window: pd.Timedelta | None = None):
    """The engine's aggregated value of a rule condition (e.g. the 3 h precipitation sum).

    Taken from the levels the assessment already computed (the active rule set, then the
    jurisdiction's extreme-weather table, if it declares one), so a figure shows exactly what
    the levels were judged on: windows aligned to the steps (NaN where a window begins inside
    a step), units converted. None when no
    evaluated condition of the rules reduces ``variable`` this way.
    """
    results = [assessment.levels]
    if assessment.extreme is not None:  # the jurisdiction's own extreme criteria, if any
        results.append(assessment.extreme)
    for result in results:
        for res in result:
            for crs in (c for cl in res.conditions.values() for c in cl):
                c = crs.condition
                if crs.variable == variable and c.reduce == reduce and c.window == window:
                    if crs.evaluated and crs.value is not None:
                        return crs.value
    return None


def condition_series(
    assessment, code: str, variable: str, reduce: str, window: pd.Timedelta | None = None
) -> xr.DataArray | None:
    """:func:`engine_value` over the cells counting for a unit (the least favourable cell,
    ensemble median), or None when the rules hold no such condition."""
    value = engine_value(assessment, variable, reduce, window)
    if value is None:
        return None
    return _unit_reduce(assessment, code, value, "max")


def _step_days(series: xr.DataArray) -> np.ndarray | float:
    """Length of each step in days, from ingest's ``step_start`` (1 h without it)."""
    if "step_start" not in series.coords:
        return 1 / 24
    length = series["time"].values - series["step_start"].values
    return length / np.timedelta64(1, "D")


#: Accumulations drawn on the meteogram's precipitation panel (hours).
METEOGRAM_WINDOWS = (3, 6)


def meteogram_data(assessment, code: str) -> dict[str, xr.DataArray]:
    """The series the meteogram of a unit draws, by panel item.

    ``precip`` (per-step amounts), ``precip_3h``/``precip_6h`` (the engine's window sums of
    the rules, :func:`condition_series`), ``temp``, ``wind``, ``gust``, ``vis``; items the
    forecast or the rules lack are absent.
    """
    unit = assessment.jurisdiction.unit(code)
    out: dict[str, xr.DataArray | None] = {"precip": town_series(assessment, unit.code, "precip")}
    if out["precip"] is not None:
        for hours in METEOGRAM_WINDOWS:
            # The rainstorm rules sum rain (precip less snow water, cityops.rules.derived);
            # tables that sum precip directly are drawn the same way.
            window = pd.Timedelta(hours=hours)
            sums = condition_series(assessment, unit.code, "rain", "sum", window)
            if sums is None:
                sums = condition_series(assessment, unit.code, "precip", "sum", window)
            out[f"precip_{hours}h"] = sums
    temp = None
    if "t2m_max" in assessment.forecast:
        temp = town_series(assessment, unit.code, "t2m_max")
    out["temp"] = temp if temp is not None else town_series(assessment, unit.code, "t2m")
    out["wind"] = town_series(assessment, unit.code, "wind")
    out["gust"] = town_series(assessment, unit.code, "gust")
    out["vis"] = town_series(assessment, unit.code, "vis", how="min")
    return {k: v for k, v in out.items() if v is not None}


def _thresholds(assessment, variable: str, reduce: str, window=None) -> list[tuple[float, int]]:
    """(threshold, level) pairs of the active rules on this variable and reduction."""
    out = set()
    for res in assessment.levels:
        for rule in res.rules.levels:
            for c in rule.conditions:
                if c.variables[0] == variable or variable in c.variables:
                    if c.reduce == reduce and (window is None or c.window == window):
                        out.add((c.threshold, rule.level))
    return sorted(out)


def meteogram(assessment, code: str, *, lang: str = "zh", figsize=(8.0, 8.0)) -> Figure | None:
    """Hourly meteogram of a unit: precipitation (1/3/6 h), temperature, wind and gust,
    visibility, with the active rule thresholds drawn in their level colours.

    Values are those of the least favourable cell counting for the unit (the same cells that
    set its level); the 3 h and 6 h totals are the engine's own window sums
    (:func:`meteogram_data`), so the curve crosses a threshold exactly where a level starts.
    Returns None for a unit without geometry."""
    configure_cjk_font()
    colours = level_colours()
    unit = assessment.jurisdiction.unit(code)
    if not unit.has_geometry or unit.code not in assessment.weights["unit"].values:
        return None
    data = meteogram_data(assessment, unit.code)
    precip, temp = data.get("precip"), data.get("temp")
    wind, gust, vis = data.get("wind"), data.get("gust"), data.get("vis")
    panels = [p for p, present in (("precip", precip is not None), ("temp", temp is not None),
              ("wind", wind is not None or gust is not None), ("vis", vis is not None)) if present]  # fmt: skip
    fig = Figure(
        figsize=(figsize[0], 1.9 * max(len(panels), 1) + 0.6), dpi=110, layout="constrained"
    )
    axes = fig.subplots(max(len(panels), 1), 1, sharex=True, squeeze=False)[:, 0]
    name = unit.name_zh if lang == "zh" else unit.name_en
    fig.suptitle(t("meteogram_title", lang, unit=name), fontsize=11, parse_math=False)
    for ax, panel in zip(axes, panels, strict=False):
        if panel == "precip":
            x = _local(precip["time"].values)
            # Each bar covers the step ending at its valid time (a 6 h first step is 6 h wide).
            ax.bar(
                x,
                precip.values,
                width=-_step_days(precip),
                align="edge",
                color="#2b8cbe",
                label=t("precip_1h", lang),
            )
            top = float(max(precip.max(), 1))
            for hours, style in zip(METEOGRAM_WINDOWS, ("-", "--"), strict=True):
                acc = data.get(f"precip_{hours}h")
                if acc is None:
                    continue
                ax.plot(
                    x, acc.values, style, color="#084081", lw=1.2, label=t(f"precip_{hours}h", lang)
                )
                if bool(acc.notnull().any()):
                    top = max(top, float(acc.max()) * 1.1)
            three = pd.Timedelta("3h")
            for thr, lv in _thresholds(assessment, "rain", "sum", three) or _thresholds(
                assessment, "precip", "sum", three
            ):
                ax.axhline(thr, color=colours[lv], lw=1.2, ls=":")
                top = max(top, thr * 1.05)
            ax.set_ylim(0, top)
            ax.set_ylabel(t("precip_axis", lang))
        elif panel == "temp":
            x = _local(temp["time"].values)
            ax.plot(x, temp.values, color="#d7301f", lw=1.5)
            for thr, lv in _thresholds(assessment, temp.name, "point") + _thresholds(
                assessment, temp.name, "daily_max"
            ):
                if thr <= float(temp.max()) + 5:
                    ax.axhline(thr, color=colours[lv], lw=1.2, ls=":")
            ax.set_ylabel(t("temp_axis", lang))
        elif panel == "wind":
            for series, label, color in (
                (wind, "wind_mean", "#225ea8"),
                (gust, "wind_gust", "#7a0177"),
            ):
                if series is not None:
                    ax.plot(
                        _local(series["time"].values),
                        series.values,
                        color=color,
                        lw=1.3,
                        label=t(label, lang),
                    )
            top = max(float(s.max()) for s in (wind, gust) if s is not None)
            for var in ("wind", "gust"):
                for thr, lv in _thresholds(assessment, var, "point"):
                    if thr <= top + 5:
                        ax.axhline(
                            thr, color=colours[lv], lw=1.0, ls=":" if var == "wind" else "-."
                        )
            ax.set_ylabel(t("wind_axis", lang))
            ax.set_ylim(0, None)
        elif panel == "vis":
            ax.semilogy(_local(vis["time"].values), np.maximum(vis.values, 1), color="#525252")
            for thr, lv in _thresholds(assessment, "vis", "point"):
                ax.axhline(thr, color=colours[lv], lw=1.2, ls=":")
            ax.set_ylabel(t("vis_axis", lang))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    axes[-1].tick_params(axis="x", labelrotation=30)
    import matplotlib.dates as mdates

    axes[-1].xaxis.set_major_formatter(
        mdates.DateFormatter("%m-%d %H时" if lang == "zh" else "%m-%d %H:00")
    )
    return fig


def headline_card(assessment, code: str, headline: str, *, lang: str = "zh") -> Figure:
    """The messaging-app image: headline text above the unit's level map."""
    fig = level_map(assessment, highlight=code, zoom=code, lang=lang, figsize=(6.4, 6.0))
    # The headline is data: "$" is escaped. Lines are broken here by display width
    # (matplotlib's wrap only breaks at spaces, so a Chinese sentence ran off the image).
    tag = t("exercise_tag", lang) if getattr(assessment, "is_exercise", False) else ""
    fig.suptitle(
        "\n".join(_wrap_display(tag + headline.replace("$", r"\$"), 44)),
        fontsize=12,
        wrap=False,
        color="#5b2c83" if tag else "black",
    )
    return fig


def _wrap_display(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` display columns (a CJK character is two),
    breaking English at spaces where it can."""
    import unicodedata

    lines, line, cols = [], "", 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        if cols + w > width and line:
            cut = line.rfind(" ")
            if w == 1 and ch != " " and cut > 0 and line.isascii():
                lines.append(line[:cut])
                line = line[cut + 1 :]
            else:
                lines.append(line)
                line = ""
            cols = sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in line)
        line += ch
        cols += w
    if line:
        lines.append(line)
    return [x.strip() for x in lines]
