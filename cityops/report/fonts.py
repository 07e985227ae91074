"""A CJK font for matplotlib: the default DejaVu Sans has no Chinese glyphs (it draws boxes).

The font file comes from the ``mplfonts`` wheel on PyPI (Noto Sans CJK SC, SIL Open Font
License), so no system package or network access is needed. A system Noto CJK font (Debian
``fonts-noto-cjk``) is used when present instead.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import cache
from pathlib import Path

log = logging.getLogger("cityops")

_SYSTEM_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)


def _bundled_font() -> Path | None:
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "fonts" / "NotoSansCJKsc-Regular.otf"
    return path if path.exists() else None


@cache
def configure_cjk_font() -> str | None:
    """Register a CJK font with matplotlib and put it first in ``font.sans-serif``.

    Returns
    -------
    str or None
        The family name registered, or None (with a warning) when no CJK font is found.
    """
    import matplotlib as mpl
    from matplotlib import font_manager

    candidates = [p for p in map(Path, _SYSTEM_CANDIDATES) if p.exists()]
    bundled = _bundled_font()
    if bundled is not None:
        candidates.insert(0, bundled)
    for path in candidates:
        try:
            font_manager.fontManager.addfont(str(path))
            family = font_manager.FontProperties(fname=str(path)).get_name()
        except (OSError, RuntimeError) as err:
            log.debug("cannot use font %s: %s", path, err)
            continue
        current = [f for f in mpl.rcParams["font.sans-serif"] if f != family]
        mpl.rcParams["font.sans-serif"] = [family, *current]
        mpl.rcParams["font.family"] = "sans-serif"
        mpl.rcParams["axes.unicode_minus"] = False  # the CJK font lacks U+2212
        # The bundled font has one weight; asking for bold falls back quietly.
        logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
        return family
    log.warning("no CJK font found: Chinese labels will show as boxes (pip install mplfonts)")
    return None
