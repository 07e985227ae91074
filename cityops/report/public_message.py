"""The signal as people know it: the public texts of one issuing act (issue 18 item 3).

From the act (:class:`SignalAct`: who issued which level of which hazard for which units,
when, valid until when) this module writes the familiar release text

    伊金霍洛旗气象台2026年07月10日18时30分发布暴雨红色预警信号：预计07月10日21时至11日06时，
    阿勒腾席热镇、札萨克镇3小时内降雨量将达100毫米以上，请注意防范。

followed by the national defence guidelines of that hazard and level
(:mod:`cityops.response.guidelines`, CMA Order 16 annex) and the plan's own public actions
where it has them; an SMS text that fits one message (70 Chinese characters; 160 characters
in English); and a WeChat-ready text. A drill says so at the start of every text.

Every time shown is Beijing time; the data behind it stays UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from cityops.rules.table import level_names
from cityops.timeutil import parse_utc

__all__ = ["SMS_LIMIT", "SignalAct", "full_text", "sms_text", "wechat_text"]

#: Characters of one SMS: 70 in UCS-2 (any Chinese text), 160 in the GSM 7-bit alphabet.
SMS_LIMIT = {"zh": 70, "en": 160}
BEIJING = pd.Timedelta(hours=8)

_ACTION_ZH = {"issue": "发布", "update": "更新", "lift": "解除"}
_ACTION_EN = {"issue": "issued", "update": "updated", "lift": "lifted"}


@dataclass(frozen=True)
class SignalAct:
    """One issuing act for one hazard, as the public texts need it.

    ``level`` 0 with ``action`` "lift" is a lift (解除). ``criterion_zh`` is the level's
    standard wording ("3小时内降雨量将达100毫米以上…"); ``guidance_*`` the defence guidelines
    (national, then the plan's own public actions).
    """

    issuer_zh: str
    issuer_en: str
    hazard: str
    hazard_zh: str
    hazard_en: str
    level: int
    action: str
    issued_utc: pd.Timestamp
    towns_zh: tuple[str, ...]
    towns_en: tuple[str, ...]
    valid_from_utc: pd.Timestamp | None = None
    valid_to_utc: pd.Timestamp | None = None
    criterion_zh: str = ""
    key_zh: str = ""
    key_en: str = ""
    guidance_zh: tuple[str, ...] = ()
    guidance_en: tuple[str, ...] = ()
    guidance_source: str = ""
    identifier: str = ""
    exercise: bool = False
    #: Signals of this hazard still in force after the act, one phrase per level
    #: ("阿勒腾席热镇、伊金霍洛镇暴雨红色预警信号").
    others_zh: tuple[str, ...] = field(default_factory=tuple)
    #: The level a lift ends (0: unknown).
    lifted_level: int = 0
    #: The level an update replaces (0: none).
    previous_level: int = 0

    def __post_init__(self):
        if self.action not in _ACTION_ZH:
            raise ValueError(f"action must be issue, update or lift, not {self.action!r}")
        if not 0 <= self.level <= 4 or (self.level == 0) != (self.action == "lift"):
            raise ValueError(f"level {self.level} does not fit action {self.action}")


def _bjt(ts) -> pd.Timestamp:
    return parse_utc(ts) + BEIJING


def issued_zh(ts) -> str:
    """``2026年07月10日18时30分`` (Beijing time)."""
    return f"{_bjt(ts):%Y年%m月%d日%H时%M分}"


def issued_en(ts) -> str:
    return f"{_bjt(ts):%Y-%m-%d %H:%M} Beijing time"


def span_zh(start, end) -> str:
    """``07月10日21时至11日06时`` (the second day only when it differs)."""
    if start is None:
        return ""
    a = _bjt(start)
    if end is None:
        return f"{a:%m月%d日%H时}起"
    b = _bjt(end)
    tail = f"{b:%H时}" if b.date() == a.date() else (
        f"{b:%d日%H时}" if b.month == a.month else f"{b:%m月%d日%H时}"
    )  # fmt: skip
    return f"{a:%m月%d日%H时}至{tail}"


def span_en(start, end) -> str:
    if start is None:
        return ""
    a = _bjt(start)
    if end is None:
        return f"from {a:%d %b %H:%M}"
    return f"{a:%d %b %H:%M} to {_bjt(end):%d %b %H:%M} Beijing time"


def _criterion(text: str) -> str:
    """The forecast clause of a level's standard text (without "或者已达…且…可能持续")."""
    return text.split("，或者")[0].split(",或者")[0].strip("，。 ")


def level_words(level: int) -> tuple[str, str]:
    row = level_names()[level]
    return str(row["name_zh"]), str(row["name_en"])


def signal_name_zh(act: SignalAct) -> str:
    level = act.lifted_level if act.action == "lift" else act.level
    return f"{act.hazard_zh}{level_words(level)[0] if level else ''}预警信号"


def signal_name_en(act: SignalAct) -> str:
    level = act.lifted_level if act.action == "lift" else act.level
    return f"{act.hazard_en}{' ' + level_words(level)[1] if level else ''} warning signal"


def _others(act: SignalAct) -> str:
    return f"{'，'.join(act.others_zh)}继续生效" if act.others_zh else ""


def _drill_zh(act: SignalAct) -> str:
    return "【演练】" if act.exercise else ""


def _towns(names: tuple[str, ...]) -> str:
    return "、".join(names)


def headline_zh(act: SignalAct) -> str:
    """``伊金霍洛旗气象台2026年07月10日18时30分发布暴雨红色预警信号``."""
    verb = _ACTION_ZH[act.action]
    return f"{act.issuer_zh}{issued_zh(act.issued_utc)}{verb}{signal_name_zh(act)}"


def full_text(act: SignalAct, *, lang: str = "zh") -> str:
    """The release text with the defence guidelines (several lines)."""
    if lang == "en":
        return _full_en(act)
    lines = []
    if act.exercise:
        lines.append("【演练】本信号为演练，非真实预警。")
    if act.action == "lift":
        body = f"{act.issuer_zh}{issued_zh(act.issued_utc)}解除{_towns(act.towns_zh)}{signal_name_zh(act)}"
        if act.others_zh:
            body += f"，{_others(act)}"
        lines.append(body + "。")
    else:
        span = span_zh(act.valid_from_utc, act.valid_to_utc)
        clause = _criterion(act.criterion_zh)
        what = f"{_towns(act.towns_zh)}{clause or f'将出现{act.hazard_zh}天气'}"
        lines.append(f"{headline_zh(act)}：预计{span + '，' if span else ''}{what}，请注意防范。")
        if act.action == "update" and act.previous_level and act.previous_level != act.level:
            word = "升级" if act.level > act.previous_level else "降级"
            lines.append(
                f"（{_towns(act.towns_zh)}{act.hazard_zh}预警信号由"
                f"{level_words(act.previous_level)[0]}{word}为{level_words(act.level)[0]}。）"
            )
        if act.others_zh:
            lines.append(f"{_others(act)}。")
        if act.guidance_zh:
            lines.append("防御指南：")
            lines.extend(f"{i}. {g}" for i, g in enumerate(act.guidance_zh, 1))
            if act.guidance_source:
                lines.append(f"（来源：{act.guidance_source}）")
    if act.identifier:
        lines.append(f"信息编号：{act.identifier}")
    return "\n".join(lines) + "\n"


def _full_en(act: SignalAct) -> str:
    lines = []
    if act.exercise:
        lines.append("[EXERCISE] This signal is a drill, not a real warning.")
    verb = _ACTION_EN[act.action]
    towns = ", ".join(act.towns_en)
    if act.action == "lift":
        lines.append(
            f"{act.issuer_en} {verb} the {signal_name_en(act)} for {towns} at "
            f"{issued_en(act.issued_utc)}."
        )
    else:
        span = span_en(act.valid_from_utc, act.valid_to_utc)
        lines.append(
            f"{act.issuer_en} {verb} a {signal_name_en(act)} at {issued_en(act.issued_utc)} "
            f"for {towns}{f' ({span})' if span else ''}. Please take precautions."
        )
        if act.guidance_en:
            lines.append("Defence guidelines:")
            lines.extend(f"{i}. {g}" for i, g in enumerate(act.guidance_en, 1))
    if act.identifier:
        lines.append(f"Message: {act.identifier}")
    return "\n".join(lines) + "\n"


def _short_towns(names: tuple[str, ...], limit: int) -> str:
    """All names when they fit ``limit`` characters, else "first等N地"."""
    full = _towns(names)
    if len(full) <= limit or len(names) <= 1:
        return full
    return f"{names[0]}等{len(names)}地"


def sms_text(act: SignalAct, *, lang: str = "zh") -> str:
    """One SMS (70 characters in Chinese, 160 in English): drill tag, issuer, time, signal,
    area, the criterion or the key action as far as they fit."""
    limit = SMS_LIMIT[lang]
    if lang == "en":
        verb = _ACTION_EN[act.action]
        tag = "[EXERCISE] " if act.exercise else ""
        when = f"{_bjt(act.issued_utc):%d %b %H:%M} BJT"
        towns = (", ".join(act.towns_en) if len(act.towns_en) <= 2
                 else f"{act.towns_en[0]} and {len(act.towns_en) - 1} more")  # fmt: skip
        parts = [f"{tag}{act.issuer_en}: {signal_name_en(act)} {verb} {when} for {towns}"]
        if act.key_en and act.action != "lift" and len("; ".join([*parts, act.key_en])) < limit:
            parts.append(act.key_en)
        return _fit(parts, limit, sep="; ", end=".")
    tag = _drill_zh(act)
    when = f"{_bjt(act.issued_utc):%m月%d日%H时%M分}"
    verb = _ACTION_ZH[act.action]
    head = f"{tag}【{act.issuer_zh}】{when}{verb}"
    if act.action == "lift":
        return _fit([f"{head}{_short_towns(act.towns_zh, 24)}{signal_name_zh(act)}。"], limit)
    towns = _short_towns(act.towns_zh, 20)
    first = f"{head}{signal_name_zh(act)}：{towns}"
    clause = _criterion(act.criterion_zh)
    parts = [first]
    for extra in (clause, act.key_zh):
        if extra and len("，".join([*parts, extra])) + 1 <= limit:
            parts.append(extra)
    return _fit(parts, limit, sep="，", end="。")


def _fit(parts: list[str], limit: int, *, sep: str = "", end: str = "") -> str:
    """Join ``parts`` and cut to ``limit`` characters (an ellipsis shows a cut)."""
    text = sep.join(p for p in parts if p) + end
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def wechat_text(act: SignalAct, *, lang: str = "zh") -> str:
    """A text to paste in a WeChat group: title line, body, guidance, identifier."""
    if lang == "en":
        title = f"{'[EXERCISE] ' if act.exercise else ''}⚠ {signal_name_en(act)} ({_ACTION_EN[act.action]})"
        return f"{title}\n\n{_full_en(act)}"
    icon = {0: "✅", 1: "🔵", 2: "🟡", 3: "🟠", 4: "🔴"}[act.level]
    title = f"{_drill_zh(act)}{icon}{act.issuer_zh}{_ACTION_ZH[act.action]}{signal_name_zh(act)}"
    return f"{title}\n\n{full_text(act)}"
