"""The forwardable picture of an issued warning signal (the image people pass on in WeChat).

A portrait PNG about 1080 px wide, drawn entirely by cityops with matplotlib (no icon images,
nothing downloaded): a band in the level colour with a drawn emblem and the signal name, the
issuer, action and issue time, the validity, the towns, the key guidance as a numbered list,
and the CAP identifier at the bottom. A drill is marked twice: a banner under the band and a
large diagonal watermark across the card.

Lines are broken by display width (a CJK character is two columns; matplotlib itself only
breaks at spaces) and checked against the measured text width, so nothing runs off the image:
a long town list makes the card taller, never the text smaller.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyBboxPatch, Rectangle

from cityops.fsio import write_bytes
from cityops.i18n import check_lang
from cityops.report.fonts import configure_cjk_font
from cityops.rules.table import level_names

__all__ = ["SignalCard", "render_signal_card", "signal_title", "wrap_display"]

#: Card width in pixels, and the resolution the PNG is written at.
WIDTH_PX = 1080
DPI = 100

#: Band colour of a lifted signal (level 0 has no signal colour; white would vanish).
LIFTED_GREY = "#6B6B6B"
#: Drill marking (the colour of the drill tag in the headline card).
DRILL_PURPLE = "#5B2C83"

# Sizes in pixels (em height of the font).
_MARGIN = 60
_TITLE_PX = 64
_BANNER_PX = 36
_ISSUER_PX = 38
_LABEL_PX = 30
_BODY_PX = 40
_FOOTER_PX = 24
_EMBLEM_PX = 176
_LINE = 1.38  # line height as a multiple of the em
_MIN_ASPECT = 1.1  # height / width at least (portrait: 1080 x 1188)

_TEXT_DARK = "#1A1A1A"
_TEXT_GREY = "#666666"
_RULE_GREY = "#D0D0D0"

_WORDS = {
    "zh": {
        "signal": "{hazard}{level}预警信号",
        "lifted": "{hazard}{level}预警信号解除",
        "in_force": "继续生效",
        "lifted_word": "解除",
        "issue": "{issuer} {time} {action}",
        "valid": "有效时段",
        "towns": "影响区域",
        "guidance": "防御指南",
        "town_sep": "、",
        "id": "标识：{identifier}",
        "banner": "【演练】本信号为演练，非真实预警",
        "watermark": "演练",
    },
    "en": {
        "signal": "{hazard} {level} warning signal",
        "lifted": "{hazard} {level} warning signal lifted",
        "in_force": "Still in force",
        "lifted_word": "LIFTED",
        "issue": "{issuer}, {action} {time}",
        "valid": "Valid",
        "towns": "Areas affected",
        "guidance": "What to do",
        "town_sep": ", ",
        "id": "Identifier: {identifier}",
        "banner": "EXERCISE — not a real warning",
        "watermark": "EXERCISE",
    },
}

# Punctuation that may not start a line / end a line (simple kinsoku).
_NO_START = set("、，。；：！？）】》」』,.;:!?)%")
_NO_END = set("（【《「『(")
#: Words left out of the English emblem.
_EMBLEM_SKIP = {"AND", "OF", "THE", "&", "WITH"}


@dataclass(frozen=True)
class SignalCard:
    """What the card shows; every text is already worded (and formatted) by the caller."""

    hazard_name_zh: str  # 暴雨
    hazard_name_en: str  # rainstorm
    level: int  # 0 = lifted (解除), 1 blue, 2 yellow, 3 orange, 4 red
    issuer_zh: str  # 伊金霍洛旗气象台
    issuer_en: str  # Ejin Horo Banner Meteorological Office
    issued_bjt: str  # "2026年07月10日18时00分"
    issued_bjt_en: str  # "2026-07-10 18:00 Beijing time"
    valid_bjt: str  # "07月10日18时至11日06时" (may be "")
    valid_bjt_en: str
    action_zh: str  # 发布 / 更新 / 解除
    action_en: str  # issued / updated / lifted
    towns_zh: tuple[str, ...]
    towns_en: tuple[str, ...]
    guidance_zh: tuple[str, ...]  # 2-4 key guidance lines
    guidance_en: tuple[str, ...]
    identifier: str  # CAP identifier, printed small at the bottom
    exercise: bool = False  # a drill
    lifted_level: int = 0  # the level a lift ends (named in the title), 0 unknown
    in_force_zh: tuple[str, ...] = ()  # signals of the hazard still in force after the act
    in_force_en: tuple[str, ...] = ()


# --------------------------------------------------------------------------- wrapping
def _cols(text: str) -> int:
    """Display columns of ``text``: East-Asian wide and full-width characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _tokens(text: str) -> list[str]:
    """Break opportunities: a run of narrow non-space characters (a word or number) is one
    token, every wide character is one, any run of spaces is one ``" "``."""
    out: list[str] = []
    word = ""
    for ch in text:
        if ch.isspace() or _cols(ch) == 2:
            if word:
                out.append(word)
                word = ""
            if not ch.isspace():
                out.append(ch)
            elif not out or out[-1] != " ":
                out.append(" ")
        else:
            word += ch
    if word:
        out.append(word)
    return out


def wrap_display(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` display columns (a CJK character is two).

    English breaks at spaces; Chinese between any two characters, except that closing
    punctuation does not start a line and opening punctuation does not end one. A word longer
    than the line (an identifier) is broken between characters. ``\\n`` starts a new line.
    """
    width = max(int(width), 2)
    lines: list[str] = []
    for para in str(text).split("\n"):
        line: list[str] = []
        cols = 0

        def flush() -> None:
            nonlocal line, cols
            lines.append("".join(line).strip())
            line, cols = [], 0

        for tok in _tokens(para):
            if tok == " ":
                if line:
                    line.append(tok)
                    cols += 1
                continue
            w = _cols(tok)
            if w > width:  # a word longer than a line: break it between characters
                for ch in tok:
                    if cols + _cols(ch) > width and line:
                        flush()
                    line.append(ch)
                    cols += _cols(ch)
                continue
            if cols + w > width and line:
                carry: list[str] = []
                if tok in _NO_START or line[-1] in _NO_END:
                    # keep the punctuation with its neighbour: move one token down with it
                    while line and line[-1] == " ":
                        line.pop()
                    if len(line) > 1:
                        carry = [line.pop()]
                flush()
                line = carry
                cols = _cols("".join(carry))
            line.append(tok)
            cols += w
        flush()
    return [ln for ln in lines if ln] or [""]


def wrap_items(items, sep: str, width: int) -> list[str]:
    """``items`` joined by ``sep`` in lines of at most ``width`` display columns, broken only
    between items (a town name is not split) unless one item alone is longer than a line."""
    width = max(int(width), 2)
    lines: list[str] = []
    line = ""
    items = list(items)
    for i, item in enumerate(items):
        piece = item + (sep if i < len(items) - 1 else "")
        if line and _cols(line.rstrip() + piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        if not line and _cols(piece.rstrip()) > width:
            *full, line = wrap_display(piece, width)
            lines.extend(full)
            line += " " if piece.endswith(" ") else ""
            continue
        line += piece
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


# --------------------------------------------------------------------------- colours
def _luminance(colour: str) -> float:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in to_rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _text_on(colour: str) -> str:
    """White on the band when it reaches the 3:1 contrast of large text, else black."""
    return "#FFFFFF" if 1.05 / (_luminance(colour) + 0.05) >= 3.0 else "#000000"


def _mix(colour: str, other: str, share: float) -> tuple[float, float, float]:
    a, b = to_rgb(colour), to_rgb(other)
    return tuple((1 - share) * x + share * y for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------- layout
@dataclass
class _Text:
    x: float
    y: float  # top of the line box, pixels from the top
    text: str
    px: float
    colour: str | tuple
    ha: str = "left"
    weight: str = "normal"


def signal_title(card: SignalCard, lang: str = "zh") -> str:
    """The signal's name: 暴雨红色预警信号 / Rainstorm red warning signal (解除 when lifted)."""
    words = _WORDS[check_lang(lang)]
    row = _level_row(card.level)
    hazard = card.hazard_name_zh if lang == "zh" else card.hazard_name_en.strip()
    if lang == "en":
        hazard = hazard[:1].upper() + hazard[1:]
    if card.level == 0:
        row = _level_row(card.lifted_level) if card.lifted_level else None
        level = "" if row is None else (row["name_zh"] if lang == "zh" else row["name_en"])
        return " ".join(words["lifted"].format(hazard=hazard, level=level).split())
    level = row["name_zh"] if lang == "zh" else row["name_en"]
    return words["signal"].format(hazard=hazard, level=level)


def _level_row(level) -> dict:
    if isinstance(level, bool) or not isinstance(level, Integral) or not 0 <= level <= 4:
        raise ValueError(f"level {level!r}: expected 0 (lifted) to 4 (red)")
    return level_names()[int(level)]


class _Measure:
    """Text widths in pixels, measured with the font matplotlib will draw with."""

    def __init__(self) -> None:
        self._renderer = RendererAgg(WIDTH_PX, 100, DPI)
        self._cache: dict[tuple[str, float], float] = {}

    def __call__(self, text: str, px: float) -> float:
        key = (text, px)
        if key not in self._cache:
            prop = FontProperties(size=px * 72.0 / DPI)
            w, _, _ = self._renderer.get_text_width_height_descent(text, prop, ismath=False)
            self._cache[key] = float(w)
        return self._cache[key]


def _fit(
    text: str,
    px: float,
    width_px: float,
    measure: Callable[[str, float], float],
    wrap: Callable[[int], list[str]] | None = None,
) -> list[str]:
    """Lines of ``text`` at ``px`` no wider than ``width_px``: wrapped by display width
    (``wrap(cols)``, default :func:`wrap_display`), the column budget lowered until every
    measured line fits."""
    if wrap is None:

        def wrap(cols: int) -> list[str]:
            return wrap_display(text, cols)

    cols = int(width_px / (px / 2.0))
    while cols > 2:
        lines = wrap(cols)
        if all(measure(line, px) <= width_px for line in lines):
            return lines
        cols -= 1
    return wrap(2)


def render_signal_card(card: SignalCard, path, *, lang: str = "zh") -> Path:
    """Draw ``card`` as a portrait PNG about 1080 px wide and write it atomically to ``path``.

    Raises
    ------
    ValueError
        The level is not 0-4, or ``lang`` is not ``zh``/``en``.
    """
    lang = check_lang(lang)
    row = _level_row(card.level)
    configure_cjk_font()
    words = _WORDS[lang]
    zh = lang == "zh"
    measure = _Measure()

    band = LIFTED_GREY if int(card.level) == 0 else row["colour"]
    on_band = _text_on(band)
    W = WIDTH_PX
    inner = W - 2 * _MARGIN
    texts: list[_Text] = []
    rects: list[tuple[float, float, float, float, object]] = []  # x, y, w, h, colour

    def block(
        text: str,
        px: float,
        y: float,
        *,
        x: float = _MARGIN,
        width: float = inner,
        colour=_TEXT_DARK,
        weight: str = "normal",
        wrap=None,
    ) -> float:
        """Lay out wrapped ``text`` from ``y``; the y below it."""
        for line in _fit(text, px, width, measure, wrap):
            texts.append(_Text(x, y, line, px, colour, weight=weight))
            y += px * _LINE
        return y

    # ---- the band: emblem on the left, the signal name beside it
    pad = 40
    title_x = _MARGIN + _EMBLEM_PX + 36
    title_lines = _fit(signal_title(card, lang), _TITLE_PX, W - _MARGIN - title_x, measure)
    title_h = len(title_lines) * _TITLE_PX * _LINE
    band_h = max(_EMBLEM_PX, title_h) + 2 * pad
    rects.append((0, 0, W, band_h, band))
    y = (band_h - title_h) / 2
    for line in title_lines:
        texts.append(_Text(title_x, y, line, _TITLE_PX, on_band, weight="bold"))
        y += _TITLE_PX * _LINE
    emblem_y = (band_h - _EMBLEM_PX) / 2
    emblem = _emblem_texts(card, lang, _MARGIN, emblem_y, measure)
    emblem_fill = _mix(band, "#000000" if on_band == "#FFFFFF" else "#FFFFFF", 0.28)
    emblem_ink = _text_on(emblem_fill)
    for item in emblem:
        item.colour = emblem_ink
    texts.extend(emblem)
    y = band_h

    # ---- the drill banner, directly under the band
    if card.exercise:
        lines = _fit(words["banner"], _BANNER_PX, inner, measure)
        banner_h = len(lines) * _BANNER_PX * _LINE + 28
        rects.append((0, y, W, banner_h, DRILL_PURPLE))
        ty = y + 14
        for line in lines:
            texts.append(_Text(W / 2, ty, line, _BANNER_PX, "#FFFFFF", ha="center", weight="bold"))
            ty += _BANNER_PX * _LINE
        y += banner_h

    # ---- issuer, action and issue time
    y += 40
    issuer = card.issuer_zh if zh else card.issuer_en
    time = card.issued_bjt if zh else card.issued_bjt_en
    action = card.action_zh if zh else card.action_en
    y = block(
        words["issue"].format(issuer=issuer, time=time, action=action).strip(),
        _ISSUER_PX,
        y,
        colour="#222222",
    )
    y += 16
    rules = [y]
    y += 28

    # ---- validity, towns, guidance
    def section(label: str, y: float) -> float:
        texts.append(_Text(_MARGIN, y, label, _LABEL_PX, _TEXT_GREY))
        return y + _LABEL_PX * _LINE + 2

    valid = (card.valid_bjt if zh else card.valid_bjt_en).strip()
    if valid:
        y = section(words["valid"], y)
        y = block(valid, _BODY_PX, y) + 22
    towns = [t.strip() for t in (card.towns_zh if zh else card.towns_en) if t.strip()]
    if towns:
        y = section(words["towns"], y)
        sep = words["town_sep"]
        y = block(sep.join(towns), _BODY_PX, y, wrap=lambda c: wrap_items(towns, sep, c)) + 22
    guidance = [g.strip() for g in (card.guidance_zh if zh else card.guidance_en) if g.strip()]
    if guidance:
        y = section(words["guidance"], y)
        indent = measure(f"{len(guidance)}. ", _BODY_PX) + 6
        for i, item in enumerate(guidance, 1):
            texts.append(_Text(_MARGIN, y, f"{i}.", _BODY_PX, _number_colour(band)))
            y = block(item, _BODY_PX, y, x=_MARGIN + indent, width=inner - indent) + 10
        y += 12
    in_force = [t.strip() for t in (card.in_force_zh if zh else card.in_force_en) if t.strip()]
    if in_force:
        y = section(words["in_force"], y)
        for item in in_force:
            y = block(item, _BODY_PX, y) + 10
        y += 12

    # ---- footer: the identifier, at the bottom of a card at least _MIN_ASPECT (portrait)
    footer: list[_Text] = []
    fy = 20.0
    for line in _fit(words["id"].format(identifier=card.identifier), _FOOTER_PX, inner, measure):
        footer.append(_Text(_MARGIN, fy, line, _FOOTER_PX, _TEXT_GREY))
        fy += _FOOTER_PX * _LINE
    H = round(max(y + 6 + fy + 30, W * _MIN_ASPECT))
    top = H - 30 - fy
    rules.append(top)
    for item in footer:
        item.y += top
    texts.extend(footer)

    # ---- draw: one axes over the whole figure, one data unit = one pixel, y downwards
    fig = Figure(figsize=(W / DPI, H / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.set_axis_off()
    for x, ry, w, h, colour in rects:
        ax.add_patch(
            Rectangle((x, ry), w, h, facecolor=colour, edgecolor="none", antialiased=False)
        )
    ax.add_patch(
        FancyBboxPatch(
            (_MARGIN, emblem_y),
            _EMBLEM_PX,
            _EMBLEM_PX,
            boxstyle="round,pad=0,rounding_size=26",
            facecolor=emblem_fill,
            edgecolor=on_band,
            linewidth=2.5,
        )
    )
    for ry in rules:
        ax.plot([_MARGIN, W - _MARGIN], [ry, ry], color=_RULE_GREY, linewidth=1.5)
    for item in texts:
        ax.text(
            item.x,
            item.y,
            item.text,
            fontsize=item.px * 72.0 / DPI,
            color=item.colour,
            ha=item.ha,
            va="top",
            fontweight=item.weight,
            usetex=False,
            parse_math=False,
        )
    if card.exercise:
        _watermark(ax, words["watermark"], W, H, measure)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return write_bytes(path, buf.getvalue())


def _number_colour(band: str) -> str:
    """The guidance numbers in the level colour when it reads on white, else dark text."""
    return band if 1.05 / (_luminance(band) + 0.05) >= 3.0 else _TEXT_DARK


def _emblem_texts(card: SignalCard, lang: str, x0: float, y0: float, measure) -> list[_Text]:
    """The emblem's words: the hazard (up to two lines) above the level word, centred."""
    size = _EMBLEM_PX
    room = size - 28
    if lang == "zh":
        hazard = card.hazard_name_zh.strip()
        rows = (
            [hazard]
            if len(hazard) <= 3
            else [hazard[: len(hazard) // 2], hazard[len(hazard) // 2 :]]
        )
        level = "解除" if card.level == 0 else level_names()[card.level]["name_zh"]
    else:
        hazard = card.hazard_name_en.strip().upper()
        # the words that name it ("sand and dust storm": SAND DUST STORM), at most three rows
        rows = [w for w in hazard.split() if w not in _EMBLEM_SKIP][:3] or [hazard]
        level = "LIFTED" if card.level == 0 else level_names()[card.level]["name_en"].upper()
    # the hazard as large as fits the square, the level word smaller beneath; the stack
    # centred in the square
    px = 66.0 if lang == "zh" else 44.0
    level_px = 36.0 if lang == "zh" else 28.0
    gap = 10.0

    def height() -> float:
        return len(rows) * px * 1.12 + gap + level_px * 1.12

    while px > 14 and (max(measure(r, px) for r in rows) > room or height() > room):
        px -= 2
    while level_px > 12 and measure(level, level_px) > room:
        level_px -= 2
    out = []
    cx = x0 + size / 2
    y = y0 + (size - height()) / 2
    for r in rows:
        out.append(_Text(cx, y, r, px, "", ha="center", weight="bold"))
        y += px * 1.12
    out.append(_Text(cx, y + gap, level, level_px, "", ha="center", weight="bold"))
    return out


def _watermark(ax, word: str, W: float, H: float, measure) -> None:
    """The drill word large, diagonal and faint across the card (repeated on a tall card)."""
    px = 300.0
    px *= min(1.0, 0.78 * W / max(measure(word, px), 1.0))
    n = max(1, round(H / (1.1 * W)))
    for k in range(n):
        ax.text(
            W / 2,
            H * (k + 0.5) / n,
            word,
            fontsize=px * 72.0 / DPI,
            color=DRILL_PURPLE,
            alpha=0.16,
            rotation=30,
            ha="center",
            va="center",
            rotation_mode="anchor",
            fontweight="bold",
            usetex=False,
            parse_math=False,
            zorder=10,
        )
