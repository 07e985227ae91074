"""Interactive exploration of a forecast in JupyterLab (ipywidgets) for the duty meteorologist.

>>> from cityops.report.explore import Explorer  # doctest: +SKIP
>>> Explorer().show()                          # doctest: +SKIP

Pick a forecast (default: the newest in the forecast folder), a unit or the whole banner, a
hazard, a valid time (slider and play), levels or raw values, an ensemble member or the
probability; see the map, the unit's meteogram, hazard table and tasks. The what-if panel
changes one threshold of the rule table *in memory* (the shipped tables are never written) and
lists the units and exposure points whose level changes. "Open the briefing" runs the
briefing template for the unit and links its HTML.

Everything a time step needs is precomputed when a forecast is opened (level fields per
hazard as small integer arrays, the figure with its outlines), so a slider step only swaps
the array of one image and re-encodes a PNG. The forecast is read through the one data path
(:func:`cityops.pipeline.assess`), which crops to the jurisdiction before loading, so a large
regional file loads only the banner's cells.

The callbacks are plain methods (``on_town``, ``on_time``, ``apply_whatif``, ...) so they can
be tested without a browser.
"""

from __future__ import annotations

import dataclasses
import html
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cityops.errors import InputError

__all__ = ["BANNER", "Explorer", "find_forecasts", "with_threshold"]

BANNER = "__banner__"
#: Where to look for forecasts when none is given (overridden by CITYOPS_FORECAST_DIR).
DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "data" / "samples"
_COMPANIONS = (".observed.nc", ".history.nc")
_FORECAST_SUFFIXES = (".nc", ".nc4", ".grib", ".grib2", ".grb", ".grb2")


def find_forecasts(folder: str | os.PathLike | None = None) -> list[Path]:
    """Forecast files in ``folder`` (default ``CITYOPS_FORECAST_DIR`` or ``data/samples``),
    newest first; observed and history companions of the scenarios are left out."""
    folder = Path(folder or os.environ.get("CITYOPS_FORECAST_DIR") or DEFAULT_FOLDER)
    if not folder.is_dir():
        return []
    files = [
        p
        for p in folder.iterdir()
        if p.is_file()
        and p.suffix.lower() in _FORECAST_SUFFIXES
        and not p.name.endswith(_COMPANIONS)
    ]
    return sorted(files, key=lambda p: (-p.stat().st_mtime, p.name))


def _replace_condition(group, index: int, new, counter: list[int]):
    """``group`` with its ``index``-th condition (depth-first order) replaced by ``new``."""
    from cityops.rules.table import Group

    items = []
    for item in group.items:
        if isinstance(item, Group):
            items.append(_replace_condition(item, index, new, counter))
        else:
            items.append(new if counter[0] == index else item)
            counter[0] += 1
    return dataclasses.replace(group, items=tuple(items))


def with_threshold(table, hazard: str, level: int, condition: int, threshold: float):
    """A copy of the rule table with one condition's threshold changed (canonical units).

    The shipped table object is not modified (rule tables are frozen dataclasses); nothing is
    written to disk.
    """
    rules = table.hazards[hazard]
    rule = rules.level_rule(level)
    if rule is None:
        raise InputError(f"what-if: {hazard} has no level {level}")
    conditions = rule.criteria.flat()
    if not 0 <= condition < len(conditions):
        raise InputError(f"what-if: {hazard} level {level} has no condition {condition}")
    old = conditions[condition]
    new = dataclasses.replace(
        old,
        threshold=float(threshold),
        threshold_text=f"{threshold:g} {old.units}",
    )
    criteria = _replace_condition(rule.criteria, condition, new, [0])
    levels = tuple(
        dataclasses.replace(r, criteria=criteria) if r is rule else r for r in rules.levels
    )
    hazards = {**table.hazards, hazard: dataclasses.replace(rules, levels=levels)}
    return dataclasses.replace(table, hazards=hazards, ruleset=f"{table.ruleset}+what-if")


class Explorer:
    """The exploration panel: widgets, precomputed fields and callbacks.

    Parameters
    ----------
    forecast : path, optional
        Forecast to open (default: the newest in ``folder``).
    folder : path, optional
        Forecast folder for the file picker (default ``CITYOPS_FORECAST_DIR`` or
        ``data/samples``).
    jurisdiction, rules : str, optional
    lang : {"zh", "en"}, optional
    """

    def __init__(
        self,
        forecast: str | os.PathLike | None = None,
        *,
        folder: str | os.PathLike | None = None,
        jurisdiction: str = "ejin-horo",
        rules: str = "national",
        lang: str = "zh",
    ) -> None:
        import ipywidgets as w

        from cityops.i18n import check_lang

        self.jurisdiction, self.rules, self.lang = jurisdiction, rules, check_lang(lang)
        files = find_forecasts(folder)
        if forecast is not None:
            forecast = Path(forecast)
            files = [forecast, *[f for f in files if f.resolve() != forecast.resolve()]]
        if not files:
            raise InputError(f"no forecast files in {folder or DEFAULT_FOLDER}; give one")
        zh = lang == "zh"
        self.file = w.Dropdown(
            options=[(f.name, str(f)) for f in files],
            description="预报" if zh else "Forecast",
        )
        self.town = w.Combobox(
            placeholder="镇名、简称或代码" if zh else "unit name, alias or code",
            description="镇（区）" if zh else "Unit",
            ensure_option=False,
        )
        self.town.add_class("cityops-town")
        self.hazard = w.Dropdown(description="灾种" if zh else "Hazard")
        self.view = w.ToggleButtons(
            options=[("级别", "level"), ("要素值", "value")]
            if zh
            else [("level", "level"), ("value", "value")]
        )
        self.member = w.Dropdown(description="成员" if zh else "Member")
        self.time = w.IntSlider(min=0, max=0, value=0, description="时次" if zh else "Step",
                                continuous_update=False, readout=False,
                                layout=w.Layout(width="420px"))  # fmt: skip
        self.time.add_class("cityops-time-slider")
        self.play = w.Play(min=0, max=0, interval=700)
        w.jslink((self.play, "value"), (self.time, "value"))
        self.time_label = w.HTML()
        # Fixed sizes: the map must not shrink when the meteogram arrives beside it.
        self.map = w.Image(format="png", layout=w.Layout(width="576px", min_width="576px"))
        self.map.add_class("cityops-map")
        self.meteogram = w.Image(format="png", layout=w.Layout(width="512px", display="none"))
        self.table = w.HTML()
        self.table.add_class("cityops-table")
        self.tasks = w.HTML()
        self.status = w.HTML()
        # What-if panel
        self.wi_level = w.Dropdown(description="级别" if zh else "Level")
        self.wi_condition = w.Dropdown(description="条件" if zh else "Condition")
        self.wi_threshold = w.FloatText(description="阈值" if zh else "Threshold")
        self.wi_apply = w.Button(description="试算" if zh else "Try", button_style="warning")
        self.wi_reset = w.Button(description="恢复" if zh else "Reset")
        self.wi_result = w.HTML()
        self.wi_result.add_class("cityops-whatif")
        self.brief_button = w.Button(description="打开本镇简报" if zh else "Open the briefing")
        self.brief_link = w.HTML()
        self.whatif: pd.DataFrame | None = None

        self.file.observe(lambda ch: self.open(ch["new"]), names="value")
        self.town.observe(lambda ch: self.on_town(ch["new"]), names="value")
        self.hazard.observe(lambda ch: self.on_hazard(ch["new"]), names="value")
        self.view.observe(lambda ch: self.redraw(), names="value")
        self.member.observe(lambda ch: self.redraw(), names="value")
        self.time.observe(lambda ch: self.on_time(ch["new"]), names="value")
        self.wi_level.observe(lambda ch: self._fill_conditions(), names="value")
        self.wi_condition.observe(lambda ch: self._fill_threshold(), names="value")
        self.wi_apply.on_click(lambda _: self.apply_whatif())
        self.wi_reset.on_click(lambda _: self.reset_whatif())
        self.brief_button.on_click(lambda _: self.open_briefing())
        self.code: str = BANNER
        self.open(self.file.value)

    # ------------------------------------------------------------------ loading
    def open(self, path: str) -> None:
        """Open a forecast: assess it once and precompute the per-hazard level arrays."""
        from cityops.pipeline import assess

        self.__dict__.pop("mesh", None)  # the old figure belongs to the old grid
        self.A = assess(path, jurisdiction=self.jurisdiction, rules=self.rules)
        A = self.A
        self.times = pd.DatetimeIndex(A.forecast["time"].values)
        self.fields: dict[str, np.ndarray] = {}
        self.values: dict[str, tuple[np.ndarray, str]] = {}
        for res in A.levels:
            if not res.evaluated:
                continue
            level = res.level
            dims = [d for d in ("member", "time") if d in level.dims]
            self.fields[res.hazard] = np.asarray(level.transpose(*dims, ...).values, dtype="int8")
            key = self._key_value(res)
            if key is not None:
                self.values[res.hazard] = key
        self.ensemble = "member" in A.forecast.dims
        zh = self.lang == "zh"
        names = {r.hazard: r.rules.name(self.lang) for r in A.levels if r.evaluated}
        self.hazard.options = [("全部灾种" if zh else "all hazards", "")] + [
            (n, h) for h, n in names.items()
        ]
        if self.ensemble:
            n = A.forecast.sizes["member"]
            self.member.options = [("概率" if zh else "probability", "prob"),
                                   ("最高成员" if zh else "max member", "max")] + [
                (str(i), str(i)) for i in range(n)
            ]  # fmt: skip
            self.member.disabled = False
        else:
            self.member.options = [("确定性预报" if zh else "deterministic", "det")]
            self.member.disabled = True
        # ipywidgets 8 leaves a Dropdown's value unset when its options are replaced.
        self.member.value = self.member.options[0][1]
        if self.hazard.value is None:
            self.hazard.value = ""
        juris = A.jurisdiction
        self.town.options = tuple(
            ["全旗" if zh else "whole banner"]
            + [u.name_zh for u in juris.units]
            + [u.code for u in juris.units]
        )
        self.time.max = self.play.max = len(self.times) - 1
        self._build_figure()
        self.reset_whatif()
        self.on_town(self.town.value or "")
        self.on_hazard(self.hazard.value)

    @staticmethod
    def _key_value(res) -> tuple[np.ndarray, str] | None:
        """The aggregated value behind the lowest level's first condition (e.g. the 3 h sum)."""
        for level in sorted(res.conditions):
            for crs in res.conditions[level]:
                if crs.evaluated and crs.value is not None and "time" in crs.value.dims:
                    dims = [d for d in ("member", "time") if d in crs.value.dims]
                    arr = np.asarray(crs.value.transpose(*dims, ...).values, dtype="float32")
                    return arr, crs.condition.units
        return None

    # ------------------------------------------------------------------ figure
    def _build_figure(self) -> None:
        from matplotlib.colors import BoundaryNorm, ListedColormap
        from matplotlib.figure import Figure

        from cityops.report.fonts import configure_cjk_font
        from cityops.report.plots import _geom_patch, level_colours

        configure_cjk_font()
        A = self.A
        lat, lon = A.forecast["lat"].values, A.forecast["lon"].values
        colours = level_colours()
        colours[0] = "#F4F4F4"
        self._level_cmap = (ListedColormap(colours), BoundaryNorm(np.arange(-0.5, 5.5, 1), 5))
        fig = Figure(figsize=(6.4, 5.0), dpi=90, layout="constrained")
        ax = fig.add_subplot()
        shape = next(iter(self.fields.values())).shape[-2:] if self.fields else lat.shape
        self.mesh = ax.pcolormesh(lon, lat, np.zeros(shape), shading="nearest",
                                  cmap=self._level_cmap[0], norm=self._level_cmap[1])  # fmt: skip
        juris = A.jurisdiction
        ax.add_patch(_geom_patch(juris.outline, facecolor="none", edgecolor="#111", lw=1.4))
        self._outlines = {}
        for unit in juris.units:
            if unit.has_geometry:
                self._outlines[unit.code] = ax.add_patch(
                    _geom_patch(unit.geometry, facecolor="none", edgecolor="#555", lw=0.6)
                )
                if unit.seat_lon is not None:
                    ax.annotate(unit.name_zh if self.lang == "zh" else unit.name_en,
                                (unit.seat_lon, unit.seat_lat), fontsize=7, parse_math=False,
                                xytext=(2, 2), textcoords="offset points")  # fmt: skip
        register = self._register()
        if register is not None and not register.empty:
            pts = register.drop_duplicates("asset_id")
            ax.plot(pts["lon"], pts["lat"], "^", ms=4, color="#222", alpha=0.7, ls="none")
        lon0, lat0, lon1, lat1 = juris.bounds
        ax.set_xlim(lon0 - 0.05, lon1 + 0.05)
        ax.set_ylim(lat0 - 0.05, lat1 + 0.05)
        ax.set_aspect(1 / np.cos(np.deg2rad((lat0 + lat1) / 2)))
        ax.tick_params(labelsize=7)
        self.colorbar = fig.colorbar(self.mesh, ax=ax, shrink=0.8)
        self._level_ticks()
        self.ax, self.fig = ax, fig

    def _level_ticks(self) -> None:
        """Level names on the colour bar (0 none … 4 red) instead of the bin edges."""
        from cityops.i18n import level_label

        self.colorbar.set_ticks(range(5), labels=[level_label(i, self.lang) for i in range(5)])
        self.colorbar.ax.tick_params(labelsize=7)
        self.colorbar.set_label("级别" if self.lang == "zh" else "level", fontsize=8)

    def _register(self) -> pd.DataFrame | None:
        """The jurisdiction's exposure register (points with lon/lat), if it has one."""
        from cityops.geo.exposure import load_assets

        try:
            return load_assets(self.A.jurisdiction)
        except (InputError, FileNotFoundError):
            return None

    def _field(self, t: int) -> tuple[np.ndarray, bool]:
        """The array shown at step ``t`` and whether it is a level field."""
        hazard, member = self.hazard.value, self.member.value
        if self.view.value == "value" and hazard and hazard in self.values:
            arr = self.values[hazard][0]
            return (self._member(arr, member, value=True)[t], False)
        if hazard:
            stack = [self._whatif_field(hazard)]
        else:
            stack = list(self.fields.values())
        per_hazard = [self._member(a, member)[t] for a in stack]
        return np.maximum.reduce(per_hazard) if per_hazard else np.zeros(
            self.mesh.get_array().shape
        ), True

    def _whatif_field(self, hazard: str) -> np.ndarray:
        if self.whatif is not None and self._whatif_hazard == hazard:
            return self._whatif_levels
        return self.fields[hazard]

    def _member(self, arr: np.ndarray, member: str, value: bool = False) -> np.ndarray:
        if not self.ensemble:
            return arr
        if member == "max":
            return arr.max(axis=0)
        if member == "prob" and not value:
            # Highest level reached by at least the reporting share of members.
            from cityops.pipeline import DEFAULT_REPORT_PROBABILITY as share

            levels = np.zeros(arr.shape[1:], dtype="int8")
            for lev in range(1, 5):
                levels[(arr >= lev).mean(axis=0) >= share] = lev
            return levels
        if member == "prob":
            return arr.mean(axis=0)
        return arr[int(member)]

    def redraw(self) -> None:
        """Redraw the map for the current step (the only per-step work)."""
        if not hasattr(self, "mesh"):
            return  # still opening a forecast
        t = int(self.time.value)
        field, is_level = self._field(t)
        self.mesh.set_array(np.asarray(field, dtype="float32").ravel())
        if is_level:
            self.mesh.set_cmap(self._level_cmap[0])
            self.mesh.set_norm(self._level_cmap[1])
            self._level_ticks()
        else:
            import matplotlib.colors as mcolors

            self.mesh.set_cmap("viridis")
            finite = np.asarray(field)[np.isfinite(field)]
            hi = float(finite.max()) if finite.size else 1.0
            self.mesh.set_norm(
                mcolors.Normalize(vmin=float(finite.min()) if finite.size else 0, vmax=hi or 1.0)
            )
        for code, patch in self._outlines.items():
            sel = code == self.code
            patch.set_linewidth(2.4 if sel else 0.6)
            patch.set_edgecolor("#000" if sel else "#555")
        from cityops.timeutil import format_local

        when = format_local(self.times[t], "%m-%d %H:%M")
        label = ("北京时间 " if self.lang == "zh" else "Beijing time ") + when
        if self.whatif is not None and self.hazard.value == self._whatif_hazard:
            label += " · 假设情景" if self.lang == "zh" else " · what-if"
        self.ax.set_title(label, fontsize=9, parse_math=False)
        self.time_label.value = f"<b>{html.escape(label)}</b>"
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png")
        self.map.value = buf.getvalue()

    # ------------------------------------------------------------------ callbacks
    def on_time(self, t: int) -> None:
        self.redraw()

    def on_hazard(self, hazard: str) -> None:
        """Select a hazard ('' = all): map, what-if levels."""
        from cityops.i18n import level_label

        self.reset_whatif(redraw=False)
        rules = self.A.levels[hazard].rules if hazard else None
        if rules is not None:
            self.wi_level.options = [
                (level_label(r.level, self.lang), r.level) for r in rules.levels
            ]
            self.wi_level.value = rules.levels[0].level
        else:
            self.wi_level.options = []
        self._fill_conditions()
        self.redraw()

    def resolve_town(self, text: str) -> str:
        """A unit code from a name, alias or code; :data:`BANNER` for the whole banner."""
        text = (text or "").strip()
        if not text or text in ("全旗", "whole banner"):
            return BANNER
        return self.A.jurisdiction.unit(text).code

    def on_town(self, text: str) -> None:
        """Select a unit (name, alias or code) or the whole banner: table, tasks, meteogram."""
        from cityops.report import briefing as br

        try:
            code = self.resolve_town(text)
        except (InputError, KeyError, ValueError) as err:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
            return
        self.status.value = ""
        self.code = code
        if code == BANNER:
            self.table.value = self._banner_table()
            self.tasks.value = ""
            self.meteogram.value = b""
            self.meteogram.layout.display = "none"  # no broken-image icon
        else:
            # One line per cell: a narrow column scrolls sideways instead of wrapping words.
            self.table.value = (
                "<div style='overflow-x:auto;white-space:nowrap;max-width:560px'>"
                + br.hazard_table_html(self.A, code, lang=self.lang)
                + "</div>"
            )
            self.tasks.value = self._tasks_html(code)
            self.meteogram.value = self._meteogram_png(code)
            self.meteogram.layout.display = "" if self.meteogram.value else "none"
        self.redraw()

    def _banner_table(self) -> str:
        from cityops.report.index import overview_rows

        codes = [u.code for u in self.A.jurisdiction.units]
        rows = overview_rows(self.A, codes, {}, self.lang)
        head = ("镇（区）", "最高级别", "灾种", "开始时间") if self.lang == "zh" else (
            "Unit", "Highest level", "Hazards", "Onset")  # fmt: skip
        body = "".join(
            f"<tr><td>{html.escape(r['name'])}</td><td style='background:{r['colour']};"
            f"color:{r['fg']}'>{html.escape(r['level_text'])}</td>"
            f"<td>{html.escape(r['hazards'])}</td><td>{html.escape(r['onset'])}</td></tr>"
            for r in rows
        )
        return ("<table border='1' style='border-collapse:collapse;font-size:0.9em'><tr>"
                + "".join(f"<th>{h}</th>" for h in head) + f"</tr>{body}</table>")  # fmt: skip

    def _tasks_html(self, code: str, limit: int = 12) -> str:
        from cityops.timeutil import format_local

        if self.A.response is None:
            return ""
        tasks = self.A.response.for_unit(code)[1].head(limit)
        if tasks.empty:
            return ""
        rows = "".join(
            f"<tr><td>{html.escape(str(r.text_zh if self.lang == 'zh' else r.text_en))}</td>"
            f"<td>{html.escape(str(r.lead_unit))}</td>"
            f"<td>{format_local(r.due_utc, '%m-%d %H:%M')}</td></tr>"
            for r in tasks.itertuples()
        )
        return f"<table border='1' style='border-collapse:collapse;font-size:0.85em'>{rows}</table>"

    def _meteogram_png(self, code: str) -> bytes:
        from cityops.report.plots import meteogram

        fig = meteogram(self.A, code, lang=self.lang, figsize=(6.4, 5.6))
        if fig is None:
            return b""
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        return buf.getvalue()

    # ------------------------------------------------------------------ what-if
    def _fill_conditions(self) -> None:
        hazard, level = self.hazard.value, self.wi_level.value
        if not hazard or level is None:
            self.wi_condition.options = []
            return
        rule = self.A.levels[hazard].rules.level_rule(level)
        conds = rule.criteria.flat() if rule else []
        self.wi_condition.options = [(c.describe(self.lang), i) for i, c in enumerate(conds)]
        self.wi_condition.value = 0 if conds else None
        self._fill_threshold()

    def _fill_threshold(self) -> None:
        hazard, level, idx = self.hazard.value, self.wi_level.value, self.wi_condition.value
        if not hazard or level is None or idx is None:
            return
        from cityops.rules.table import display_units

        cond = self.A.levels[hazard].rules.level_rule(level).criteria.flat()[idx]
        self.wi_threshold.value = float(cond.threshold)
        self.wi_threshold.description = display_units(cond.units)

    def apply_whatif(self, threshold: float | None = None) -> pd.DataFrame:
        """Re-evaluate the selected hazard with one threshold changed; the units that change.

        Returns a table ``town_code, town_name, level_now, level_whatif`` of the units whose
        level changes, and lists the exposure points in them in the panel.
        """
        from cityops.geo.risk import town_hazards
        from cityops.rules.engine import evaluate

        hazard, level, idx = self.hazard.value, self.wi_level.value, self.wi_condition.value
        if not hazard or level is None or idx is None:
            raise InputError("what-if: choose a hazard, a level and a condition first")
        if threshold is not None:
            self.wi_threshold.value = float(threshold)
        A = self.A
        table = with_threshold(A.levels.table, hazard, level, idx, self.wi_threshold.value)
        result = evaluate(A.forecast, table, hazards=[hazard]).load()
        rows = town_hazards(result, A.jurisdiction, weights=A.weights, now=A.now)
        now = A.table[A.table["hazard"] == hazard].set_index("town_code")["level"]
        new = rows[rows["hazard"] == hazard].set_index("town_code")["level"]
        merged = pd.DataFrame({"level_now": now, "level_whatif": new}).dropna()
        merged = merged.astype(int)
        changed = merged[merged["level_now"] != merged["level_whatif"]].reset_index()
        names = {u.code: u.name_zh for u in A.jurisdiction.units}
        changed.insert(1, "town_name", changed["town_code"].map(names))
        self.whatif, self._whatif_hazard = changed, hazard
        dims = [d for d in ("member", "time") if d in result[hazard].level.dims]
        self._whatif_levels = np.asarray(result[hazard].level.transpose(*dims, ...).values, "int8")
        self.wi_result.value = self._whatif_html(changed, hazard)
        self.redraw()
        return changed

    def _whatif_html(self, changed: pd.DataFrame, hazard: str) -> str:
        from cityops.i18n import level_label

        zh = self.lang == "zh"
        if changed.empty:
            return "<p>没有镇（区）的级别发生变化。</p>" if zh else "<p>No unit changes level.</p>"
        rows = "".join(
            f"<tr><td>{html.escape(str(r.town_name))}</td>"
            f"<td>{level_label(r.level_now, self.lang)} → {level_label(r.level_whatif, self.lang)}</td></tr>"
            for r in changed.itertuples()
        )
        assets = ""
        register = self._register()
        if register is not None and not register.empty:
            pts = register[register["unit"].astype(str).isin(changed["town_code"])]
            pts = pts.drop_duplicates("asset_id")
            if len(pts):
                assets = ("<p>" + ("受影响点位：" if zh else "Exposure points in them: ")
                          + "、".join(html.escape(str(n)) for n in pts["name_zh"]) + "</p>")  # fmt: skip
        note = "（仅内存中试算，未修改规则表）" if zh else " (in memory only; tables unchanged)"
        return f"<table border='1' style='border-collapse:collapse'>{rows}</table>{assets}<p style='color:#777'>{note}</p>"

    def reset_whatif(self, redraw: bool = True) -> None:
        self.whatif = None
        self._whatif_hazard = None
        self.wi_result.value = ""
        if redraw and hasattr(self, "mesh"):
            self.redraw()

    # ------------------------------------------------------------------ briefing
    def open_briefing(self, out_dir: str | os.PathLike = "out/explore") -> Path | None:
        """Run the briefing template for the selected unit; link its HTML in the panel."""
        import papermill as pm

        from cityops.report.runner import strip_execution_metadata, template_path, to_html

        if self.code == BANNER:
            self.brief_link.value = (
                "请先选择一个镇（区）" if self.lang == "zh" else "Choose a unit first"
            )
            return None
        stamp = self.A.issued.strftime("%Y%m%dT%H%MZ")
        folder = Path(out_dir) / stamp / self.code
        folder.mkdir(parents=True, exist_ok=True)
        nb = folder / "briefing.ipynb"
        pm.execute_notebook(
            str(template_path()), str(nb),
            parameters={"forecast": str(Path(self.file.value).resolve()), "town": self.code,
                        "jurisdiction": self.jurisdiction, "rules": self.rules,
                        "lang": self.lang, "output_dir": str(folder.resolve())},
            kernel_name="cityops", cwd=str(template_path().parent), progress_bar=False,
        )  # fmt: skip
        strip_execution_metadata(nb)
        out = folder / "briefing.html"
        to_html(nb, out, lang=self.lang)
        link = os.path.relpath(out, Path.cwd())
        self.brief_link.value = (
            f"<a href='{html.escape(link)}' target='_blank'>{html.escape(str(out))}</a>"
        )
        return out

    # ------------------------------------------------------------------ layout
    def widget(self):
        """The whole panel as one widget."""
        import ipywidgets as w

        zh = self.lang == "zh"
        controls = w.VBox([self.file, self.town, self.hazard, self.view, self.member,
                           w.HBox([self.play, self.time]), self.time_label, self.status])  # fmt: skip
        whatif = w.VBox([w.HTML("<b>" + ("假设情景：改一个阈值" if zh else "What if: change a threshold") + "</b>"),
                         self.wi_level, self.wi_condition, self.wi_threshold,
                         w.HBox([self.wi_apply, self.wi_reset]), self.wi_result])  # fmt: skip
        left = w.VBox([controls, self.map], layout=w.Layout(min_width="600px"))
        right = w.VBox([self.meteogram, self.table, self.tasks, whatif,
                        w.HBox([self.brief_button]), self.brief_link])  # fmt: skip
        return w.HBox([left, right])

    def show(self):
        """Display the panel, and a static snapshot that survives HTML export."""
        from IPython.display import display

        display(self.widget())
        return self

    def snapshot(self):
        """A static view (map and table) for exported HTML, where widgets do not run."""
        from IPython.display import HTML, Image, display

        display(Image(self.map.value))
        display(HTML(self.table.value))
