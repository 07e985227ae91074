"""OASIS CAP 1.2 warning messages (interfaces §5).

One ``<alert>`` per hazard that reaches level ≥ 1 somewhere in the jurisdiction, with one
``<area>`` per affected unit. Everything is deterministic for the same assessment: the
identifier and ``sent`` come from the forecast's issue time, never from the wall clock.

Public API: :func:`build_alerts`, :func:`cancel_alert`, :func:`write_cap`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd
from lxml import etree

from cityops.errors import InputError
from cityops.fsio import write_bytes
from cityops.geo.risk import tier_for_lead
from cityops.resources import load_yaml, package_data
from cityops.rules.table import level_names

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_Q = f"{{{CAP_NS}}}"

#: Beijing time: CAP forbids "Z", so every time carries +08:00.
BEIJING = pd.Timedelta(hours=8)
MAX_POLYGON_POINTS = 100
MAX_INSTRUCTIONS = 5

# Names and CAP severity of each level, from cityops/data/levels.yaml.
_LEVELS = {k: v for k, v in level_names().items() if k >= 1}
LEVEL_NAMES = {k: v["name"] for k, v in _LEVELS.items()}
LEVEL_ZH = {k: v["name_zh"] for k, v in _LEVELS.items()}
SEVERITY = {k: v["cap_severity"] for k, v in _LEVELS.items()}


# --------------------------------------------------------------------------- helpers
def _ts(value) -> pd.Timestamp | None:
    """A UTC-naive Timestamp from a Timestamp or an ISO string (``Z`` or offset)."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def cap_time(value) -> str:
    """CAP dateTime in Beijing time with an explicit ``+08:00`` offset."""
    if isinstance(value, str) and len(value) >= 25 and value[-6] in "+-" and value[-3] == ":":
        return value  # already a CAP time with an offset
    ts = _ts(value)
    if ts is None:
        raise ValueError(f"not a time: {value!r}")
    return (ts + BEIJING).strftime("%Y-%m-%dT%H:%M:%S+08:00")


def _bjt_short(value) -> str:
    ts = _ts(value)
    return "" if ts is None else (ts + BEIJING).strftime("%m-%d %H:%M")


def make_identifier(code: str, issued, hazard: str) -> str:
    """``<GB/T 2260 code>-<issued as YYYYMMDDTHHMMZ>-<hazard>``."""
    return f"{code}-{_ts(issued).strftime('%Y%m%dT%H%MZ')}-{hazard}"


# Characters XML 1.0 cannot hold (C0 controls but tab, CR, LF; surrogates; U+FFFE/U+FFFF).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value) -> str:
    """``value`` as XML element text: data, never markup (lxml escapes ``<``, ``&``); the
    few characters XML cannot hold at all (control characters) are dropped."""
    return _NOT_XML.sub("", str(value))


def _sub(parent, tag: str, text=None):
    el = etree.SubElement(parent, _Q + tag)
    if text is not None:
        el.text = xml_text(text)
    return el


def _value_pair(parent, tag: str, name: str, value) -> None:
    el = _sub(parent, tag)
    _sub(el, "valueName", name)
    _sub(el, "value", value)


def _polygons(geometry) -> list[str]:
    """CAP polygons ("lat,lon" pairs, ring closed, ≤ 100 points) from a lon/lat geometry."""
    if geometry is None or geometry.is_empty:
        return []
    parts = list(getattr(geometry, "geoms", [geometry]))
    parts = [p for p in parts if p.geom_type == "Polygon" and not p.is_empty]
    parts.sort(key=lambda p: -p.area)
    out = []
    for poly in parts:
        ring = poly.exterior
        tol = 1e-4
        while len(ring.coords) > MAX_POLYGON_POINTS:
            ring = poly.exterior.simplify(tol, preserve_topology=False)
            tol *= 2
        coords = [(round(y, 5), round(x, 5)) for x, y in ring.coords]
        if coords[0] != coords[-1]:
            coords.append(coords[0])
        if len(coords) < 4:
            continue
        out.append(" ".join(f"{lat:.5f},{lon:.5f}" for lat, lon in coords))
    return out


def _levels_config() -> dict:
    return load_yaml(package_data("data", "levels.yaml"))


def urgency_for_lead(lead_hours: float | None) -> str:
    """CAP ``urgency`` of the plan's warning tier for the earliest lead (levels.yaml).

    Impact hint (≥ 24 h) → Future; alert tiers (1–24 h) → Expected; nowcast and ongoing →
    Immediate; unknown lead → Unknown.
    """
    if lead_hours is None or pd.isna(lead_hours):
        return "Unknown"
    tier = tier_for_lead(float(lead_hours))
    return next(t["cap_urgency"] for t in _levels_config()["tiers"] if t["tier"] == tier)


def certainty_for_probability(probabilities: pd.Series) -> str:
    """CAP ``certainty`` from the ensemble share reaching the level (levels.yaml).

    Likely when the highest share exceeds ``likely_above`` (CAP: p > ~50 %), Possible
    otherwise; a deterministic forecast (no shares) states its level as Likely.
    """
    config = _levels_config()["cap_certainty"]
    p = pd.to_numeric(probabilities, errors="coerce").dropna()
    if p.empty:
        return str(config["deterministic"])
    return "Likely" if p.max() > float(config["likely_above"]) else "Possible"


def _rule_text(A, hazard: str, level: int) -> str:
    try:
        for rule in A.levels[hazard].rules.levels:
            if int(rule.level) == level:
                return rule.text_zh
    except (KeyError, AttributeError, TypeError):
        pass
    return ""


def _instructions(A, hazard: str, column: str) -> list[str]:
    response = getattr(A, "response", None)
    tasks = getattr(response, "tasks", None)
    if tasks is None or len(tasks) == 0 or column not in tasks.columns:
        return []
    texts = tasks.loc[tasks["hazard"] == hazard, column].dropna().astype(str)
    seen: list[str] = []
    for text in texts:
        text = text.strip()
        if text and text not in seen:
            seen.append(text)
        if len(seen) >= MAX_INSTRUCTIONS:
            break
    return seen


# --------------------------------------------------------------------------- profile
@cache
def cap_profile() -> dict:
    """The national-profile and MeteoAlarm choices (``data/cap_profile.yaml``), validated."""
    path = package_data("data", "cap_profile.yaml")
    data = load_yaml(path)

    def need(mapping, key, where, kind=str):
        value = mapping.get(key) if isinstance(mapping, dict) else None
        if not isinstance(value, kind):
            raise InputError(f"{path.name}: {where}{key}: expected {kind.__name__}")
        return value

    sender = need(data, "sender", "", dict)
    for key, width in (("organisation_code", 3), ("internal_code", 3), ("extension", 2)):
        value = need(sender, key, "sender.")
        if not (value.isdigit() and len(value) == width):
            raise InputError(f"{path.name}: sender.{key}: {value!r}, expected {width} digits")
    need(sender, "name_zh", "sender.")
    need(sender, "name_en", "sender.")
    codes = need(data, "event_codes", "", dict)
    for hazard, code in codes.items():
        if not re.fullmatch(r"\d{2}[A-Z]\d{2}", str(code)):
            raise InputError(f"{path.name}: event_codes.{hazard}: {code!r}, expected e.g. 11B03")
    labels = {int(k): str(v) for k, v in need(data, "geocode_labels", "", dict).items()}
    meteo = need(data, "meteoalarm", "", dict)
    awareness = {
        int(k): str(v) for k, v in need(meteo, "awareness_level", "meteoalarm.", dict).items()
    }
    if not set(awareness) <= {1, 2, 3, 4}:
        raise InputError(f"{path.name}: meteoalarm.awareness_level: levels must be 1-4")
    return {
        **data,
        "geocode_labels": labels,
        "meteoalarm": {**meteo, "awareness_level": awareness},
        "max_sequence": int(data.get("identifier", {}).get("max_sequence", 9)),
    }


def sender_code(area_code: str) -> str:
    """GB/T 35965.1 A.1.2 sender code: area code + organisation + internal + extension."""
    code = str(area_code)
    if not (code.isdigit() and len(code) == 6):
        raise InputError(
            f"jurisdiction code {code!r}: a CAP sender needs the 6-digit GB/T 2260 code of the "
            "issuing area"
        )
    s = cap_profile()["sender"]
    return f"{code}{s['organisation_code']}{s['internal_code']}{s['extension']}"


def gbt_identifier(area_code: str, entry, sequence: int = 0) -> str:
    """GB/T 35965.1 A.1.1 identifier ``ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`` (Beijing entry time)."""
    if not 0 <= int(sequence) <= cap_profile()["max_sequence"]:
        raise InputError(
            f"CAP sequence {sequence}: at most {cap_profile()['max_sequence'] + 1} messages of "
            "one sender in the same second"
        )
    entry_bjt = _ts(entry) + BEIJING
    return f"{sender_code(area_code)}_{entry_bjt:%Y%m%d%H%M%S}_{int(sequence)}"


def geocode_label(code: str) -> str | None:
    """The code system of a unit code by its length (6: GB/T 2260, 9: township code)."""
    return cap_profile()["geocode_labels"].get(len(str(code))) if str(code).isdigit() else None


def event_code(hazard: str) -> str | None:
    """The national event-type code of a hazard (None: no national signal)."""
    return cap_profile()["event_codes"].get(hazard)


def hazard_of_event_code(code: str) -> str | None:
    """The hazard of a national event-type code (the reader's side of :func:`event_code`)."""
    return next((h for h, c in cap_profile()["event_codes"].items() if c == code), None)


def sender_names(jurisdiction) -> tuple[str, str]:
    """The issuing office's name in Chinese and English."""
    s = cap_profile()["sender"]
    zh = getattr(jurisdiction, "name_zh", "") or str(jurisdiction.code)
    en = getattr(jurisdiction, "name_en", "") or str(jurisdiction.code)
    return s["name_zh"].format(jurisdiction=zh), s["name_en"].format(jurisdiction=en)


# --------------------------------------------------------------------------- building
def _alert_head(identifier, sender, sent, status, msg_type, references=None, note=None):
    alert = etree.Element(_Q + "alert", nsmap={None: CAP_NS})
    _sub(alert, "identifier", identifier)
    _sub(alert, "sender", sender)
    _sub(alert, "sent", cap_time(sent))
    _sub(alert, "status", status)
    _sub(alert, "msgType", msg_type)
    _sub(alert, "scope", "Public")
    if note:
        _sub(alert, "note", note)
    if references:
        _sub(alert, "references", references)
    return alert


@dataclass(frozen=True)
class InfoContent:
    """What one ``<info>`` says besides its rows: texts and CAP qualifiers."""

    sender_name: str
    rule_text: str = ""
    instructions: tuple[str, ...] = ()
    certainty: str = "Likely"
    lead_hours: float | None = None
    action: str = ""  # 发布/更新 … for issued messages; empty for drafts
    prefix: str = ""  # 【演练】 / [EXERCISE] before headline and description in a drill


def _info(jurisdiction, hazard: str, level: int, rows: pd.DataFrame, lang: str,
          content: InfoContent, *, fallback_onset) -> etree._Element:  # fmt: skip
    """One ``<info>`` for the units of one level: its severity matches every area it names."""
    zh = lang == "zh"
    first = rows.iloc[0]
    hz_zh = str(first.get("hazard_name_zh") or hazard)
    hz_en = str(first.get("hazard_name_en") or hazard)
    name_zh = getattr(jurisdiction, "name_zh", "") or str(jurisdiction.code)
    event = f"{hz_zh}{LEVEL_ZH[level]}预警" if zh else f"{hz_en} {LEVEL_NAMES[level]} warning"

    onsets = [t for t in (_ts(v) for v in rows["onset_utc"]) if t is not None]
    ends = [t for t in (_ts(v) for v in rows.get("end_utc", pd.Series(dtype=str))) if t is not None]
    onset = min(onsets) if onsets else _ts(fallback_onset)
    expires = max(ends) if ends else onset + pd.Timedelta(hours=24)
    if expires <= onset:
        expires = onset + pd.Timedelta(hours=1)

    info = etree.Element(_Q + "info")
    _sub(info, "language", "zh-CN" if zh else "en-US")
    _sub(info, "category", "Met")
    _sub(info, "event", event)
    _sub(info, "responseType", "Prepare" if level >= 2 else "Monitor")
    _sub(info, "urgency", urgency_for_lead(content.lead_hours))
    _sub(info, "severity", SEVERITY[level])
    _sub(info, "certainty", content.certainty)
    code = event_code(hazard)
    if code:
        _value_pair(info, "eventCode", cap_profile()["event_code_name"], code)
    _sub(info, "onset", cap_time(onset))
    _sub(info, "expires", cap_time(expires))
    _sub(info, "senderName", content.sender_name)
    towns = "、".join(str(r["town_name"]) for _, r in rows.iterrows())
    if zh:
        headline = f"{content.sender_name}{content.action}{hz_zh}{LEVEL_ZH[level]}预警信号"
        lines = [f"{name_zh}{towns}预计出现{hz_zh}天气，{LEVEL_ZH[level]}预警。"]
        if content.rule_text:
            lines.append(f"{LEVEL_ZH[level]}预警标准：{content.rule_text}")
        for _, r in rows.iterrows():
            lines.append(f"{r['town_name']}：预计北京时间{_bjt_short(r['onset_utc'])}开始")
    else:
        headline = f"{content.sender_name}: {hz_en} {LEVEL_NAMES[level]} warning signal"
        lines = [f"{hz_en} expected in {len(rows)} unit(s): {LEVEL_NAMES[level]} warning."]
        for _, r in rows.iterrows():
            lines.append(
                f"{r['town_name']} ({r['town_code']}): onset {_bjt_short(r['onset_utc'])} "
                "Beijing time"
            )
    _sub(info, "headline", content.prefix + headline)
    _sub(info, "description", content.prefix + "\n".join(lines))
    if content.instructions:
        _sub(info, "instruction", "\n".join(content.instructions))
    meteo = cap_profile()["meteoalarm"]
    if level in meteo["awareness_level"]:
        _value_pair(info, "parameter", "awareness_level", meteo["awareness_level"][level])
    if hazard in meteo.get("awareness_type", {}):
        _value_pair(info, "parameter", "awareness_type", meteo["awareness_type"][hazard])
    for _, r in rows.iterrows():
        _value_pair(info, "parameter", f"level:{r['town_code']}", LEVEL_NAMES[level])
    for _, r in rows.iterrows():
        unit = jurisdiction.unit(str(r["town_code"]))
        polygons = _polygons(getattr(unit, "geometry", None))
        label = geocode_label(str(r["town_code"]))
        if not polygons and label is None:
            continue
        area = _sub(info, "area")
        _sub(area, "areaDesc", getattr(unit, "name_zh", None) or r["town_name"])
        for poly in polygons:
            _sub(area, "polygon", poly)
        if label is not None:
            _value_pair(area, "geocode", label, r["town_code"])
    return info


def _infos(jurisdiction, hazard: str, rows: pd.DataFrame, lang: str, content_of,
           fallback_onset) -> list[etree._Element]:  # fmt: skip
    """``<info>`` blocks, highest level first; per level zh then (``en``/``both``) en."""
    out = []
    for level in sorted(rows["level"].astype(int).unique(), reverse=True):
        group = rows[rows["level"].astype(int) == level]
        for language in ("zh", "en") if lang in ("en", "both") else ("zh",):
            out.append(
                _info(jurisdiction, hazard, int(level), group, language,
                      content_of(int(level), group, language), fallback_onset=fallback_onset)
            )  # fmt: skip
    return out


def build_alerts(A, *, lang: str = "zh", sender: str | None = None, previous=None) -> dict:
    """Draft CAP 1.2 alerts of a run: what it *proposes* to issue now (issue 18 item 2).

    One ``<alert>`` per hazard with a proposed level (``proposed_level`` ≥ 1: the level's
    issue-by time is reached) somewhere in the jurisdiction; one ``<info>`` per level. Levels
    still ahead are an outlook in the briefing, not drafts. The status is always ``Draft``:
    a draft becomes a warning only when the duty forecaster issues it (``cityops issue``),
    which writes the message that is sent. A drill's drafts say so in ``<note>``.

    Parameters
    ----------
    A : cityops.pipeline.Assessment
    lang : {"zh", "en", "both"}
        ``zh``: zh-CN infos; ``en``/``both``: an en-US info after each.
    sender : str, optional
        Default: the GB/T 35965.1 sender code of the jurisdiction.
    previous : dict, optional
        hazard → (identifier, sent) of the issued message this run would update: ``msgType``
        Update with ``references``.

    Returns
    -------
    dict
        hazard → lxml Element, ordered by hazard id.
    """
    if lang not in ("zh", "en", "both"):
        raise ValueError(f"lang must be zh, en or both, not {lang!r}")
    previous = previous or {}
    code = str(A.jurisdiction.code)
    sender = sender or sender_code(code)
    issued = _ts(A.issued)
    note = (
        "演练（Exercise）：草稿，未发布" if A.is_exercise else "草稿，未发布（Draft: not issued）"
    )
    name_zh, name_en = sender_names(A.jurisdiction)
    table = A.table.copy()
    if "proposed_level" not in table:
        raise InputError("town table without 'proposed_level': expected a cityops assessment")
    proposed = pd.to_numeric(table["proposed_level"], errors="coerce").fillna(0)
    table["level"] = proposed.astype(int)
    hit = table[(table["level"] >= 1) & table["evaluated"].astype(bool)]
    out = {}
    for hazard in sorted(hit["hazard"].unique()):
        rows = hit[hit["hazard"] == hazard].sort_values("town_code", kind="stable")
        refs = None
        if hazard in previous:
            prev_id, prev_sent = previous[hazard]
            refs = f"{sender},{prev_id},{cap_time(prev_sent)}"
        alert = _alert_head(
            make_identifier(code, issued, hazard),
            sender,
            issued,
            "Draft",
            "Update" if refs else "Alert",
            references=refs,
            note=note,
        )

        def content_of(level, group, language, hazard=hazard):
            leads = pd.to_numeric(group["lead_hours"], errors="coerce").dropna()
            instructions = _instructions(A, hazard, "text_zh" if language == "zh" else "text_en")
            if not instructions and language != "zh":
                instructions = _instructions(A, hazard, "text_zh")
            return InfoContent(
                sender_name=name_zh if language == "zh" else name_en,
                rule_text=_rule_text(A, hazard, level) if language == "zh" else "",
                instructions=tuple(instructions),
                certainty=certainty_for_probability(group["probability"]),
                lead_hours=float(leads.min()) if not leads.empty else None,
            )

        for info in _infos(A.jurisdiction, hazard, rows, lang, content_of, issued):
            alert.append(info)
        out[hazard] = alert
    return out


def cancel_alert(
    hazard: str,
    previous_identifier: str,
    previous_sent,
    *,
    code: str,
    sent,
    status: str,
    sender: str | None = None,
    hazard_name_zh: str | None = None,
    identifier: str | None = None,
    note: str | None = None,
) -> etree._Element:
    """A ``Cancel`` alert standing down ``hazard`` (references the previous alert).

    ``sent`` is the issue time (UTC Timestamp/ISO string, or a CAP time). ``previous_*`` may
    name several messages (lists).
    """
    sender = sender or sender_code(code)
    sent_ts = _ts(sent)
    ident = identifier or f"{code}-{sent_ts.strftime('%Y%m%dT%H%MZ')}-{hazard}-cancel"
    ids = (
        previous_identifier
        if isinstance(previous_identifier, list | tuple)
        else [previous_identifier]
    )
    sents = previous_sent if isinstance(previous_sent, list | tuple) else [previous_sent]
    alert = _alert_head(
        ident,
        sender,
        sent,
        status,
        "Cancel",
        references=" ".join(f"{sender},{i},{cap_time(s)}" for i, s in zip(ids, sents, strict=True)),
        note=note,
    )
    info = _sub(alert, "info")
    name = hazard_name_zh or hazard
    _sub(info, "language", "zh-CN")
    _sub(info, "category", "Met")
    _sub(info, "event", f"{name}预警解除")
    _sub(info, "responseType", "AllClear")
    _sub(info, "urgency", "Past")
    _sub(info, "severity", "Minor")
    _sub(info, "certainty", "Observed")
    code_ = event_code(hazard)
    if code_:
        _value_pair(info, "eventCode", cap_profile()["event_code_name"], code_)
    _sub(info, "headline", f"解除{name}预警")
    _sub(info, "description", f"{name}预警（{'、'.join(ids)}）解除。")
    return alert


# --------------------------------------------------------------------------- files
def _serialize(alert) -> bytes:
    return etree.tostring(
        etree.ElementTree(alert), xml_declaration=True, encoding="UTF-8", pretty_print=True
    )


def write_alert(alert, path: str | os.PathLike) -> Path:
    path = Path(path)
    write_bytes(path, _serialize(alert))
    return path


def write_cap(A, folder, *, lang: str = "zh", previous=None, **kwargs) -> list[Path]:
    """Write ``folder/cap_<hazard>.xml`` for every alert of :func:`build_alerts`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    alerts = build_alerts(A, lang=lang, previous=previous, **kwargs)
    return [write_alert(alert, folder / f"cap_{hazard}.xml") for hazard, alert in alerts.items()]
