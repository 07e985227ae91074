"""The forwardable signal card: colours, size, growth with long town lists, drill marking,
atomic writing, wrapping by display width."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from cityops.report import signal_card as sc
from cityops.report.signal_card import SignalCard, render_signal_card, wrap_display
from cityops.rules.table import level_names

TOWNS_20 = (
    "阿勒腾席热镇",
    "札萨克镇",
    "乌兰木伦镇",
    "纳林陶亥镇",
    "红庆河镇",
    "伊金霍洛镇",
    "苏布尔嘎镇",
    "康巴什街道",
    "哈巴格希街道",
    "青春山街道",
    "滨河街道",
    "乌兰什巴台街道",
    "天骄街道",
    "准格尔召镇",
    "布尔台格乡",
    "新街镇",
    "台格庙镇",
    "公尼召镇",
    "神山镇",
    "阿镇",
)


def _card(**kw) -> SignalCard:
    fields = dict(
        hazard_name_zh="暴雨",
        hazard_name_en="rainstorm",
        level=4,
        issuer_zh="伊金霍洛旗气象台",
        issuer_en="Ejin Horo Banner Meteorological Office",
        issued_bjt="2026年07月10日18时00分",
        issued_bjt_en="2026-07-10 18:00 Beijing time",
        valid_bjt="07月10日18时至11日06时",
        valid_bjt_en="10 Jul 18:00 to 11 Jul 06:00 Beijing time",
        action_zh="发布",
        action_en="issued",
        towns_zh=("阿勒腾席热镇", "札萨克镇"),
        towns_en=("Altan Xiree", "Jasag"),
        guidance_zh=(
            "政府及相关部门按照职责做好防暴雨应急和抢险工作；",
            "停止集会、停课、停业（除特殊行业外）；",
            "做好山洪、滑坡、泥石流等灾害的防御和抢险工作。",
        ),
        guidance_en=(
            "Authorities carry out rainstorm emergency and rescue work as assigned.",
            "Stop gatherings, classes and business (except essential services).",
            "Guard against flash floods, landslides and debris flows.",
        ),
        identifier="CN-150627-EJH-20260710T100000Z-RAINSTORM-4-0001",
    )
    fields.update(kw)
    return SignalCard(**fields)


def _rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def _hex(colour: str) -> np.ndarray:
    colour = colour.lstrip("#")
    return np.array([int(colour[i : i + 2], 16) for i in (0, 2, 4)])


def _band_colour(level: int) -> np.ndarray:
    return _hex(sc.LIFTED_GREY if level == 0 else level_names()[level]["colour"])


def _band_bottom(img: np.ndarray, colour: np.ndarray) -> int:
    """First row (down the right edge) that is no longer the band colour."""
    column = img[:, -8, :]
    y = 0
    while y < len(column) and np.abs(column[y] - colour).max() <= 3:
        y += 1
    return y


@pytest.mark.parametrize("level", [4, 3, 2, 1, 0])
def test_band_in_level_colour(tmp_path, level):
    out = render_signal_card(_card(level=level), tmp_path / "card.png")
    assert out == tmp_path / "card.png"
    img = _rgb(out)
    height, width, _ = img.shape
    assert abs(width - 1080) <= 4
    assert height > width  # portrait
    expected = _band_colour(level)
    for x, y in [(8, 8), (width - 8, 8), (width - 8, 150)]:
        assert np.abs(img[y, x] - expected).max() <= 3, (level, x, y, img[y, x])
    # the band is a band: tall enough for a name of ~48 px and more
    assert _band_bottom(img, expected) >= 160


def test_band_text_colour_by_contrast():
    assert sc._text_on(level_names()[4]["colour"]) == "#FFFFFF"  # white on red
    assert sc._text_on(level_names()[2]["colour"]) == "#000000"  # black on yellow


def test_band_text_drawn_in_contrast(tmp_path):
    img = _rgb(render_signal_card(_card(level=4), tmp_path / "red.png"))
    bottom = _band_bottom(img, _band_colour(4))
    title = img[:bottom, 300:, :]
    white = (title > 240).all(axis=2).sum()
    assert white > 2000  # the signal name in white on red


def test_twenty_towns_make_a_taller_card(tmp_path):
    short = _rgb(render_signal_card(_card(), tmp_path / "short.png"))
    long_ = _rgb(
        render_signal_card(
            _card(towns_zh=TOWNS_20, towns_en=tuple(f"Town {i}" for i in range(20))),
            tmp_path / "long.png",
        )
    )
    assert long_.shape[0] > short.shape[0]
    assert long_.shape[1] == short.shape[1]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_nothing_runs_off_the_right_edge(tmp_path, lang):
    long_guidance = (
        "各单位各部门立即启动应急响应，" * 4,
        "Everyone stay indoors and away from rivers, gullies and low-lying roads " * 3,
        "X" * 120,  # a word longer than a line
    )
    card = _card(
        towns_zh=TOWNS_20,
        towns_en=tuple(f"Altan Xiree {i}" for i in range(20)),
        guidance_zh=long_guidance,
        guidance_en=long_guidance,
        identifier="urn:oid:2.49.0.1.156.0.EJH." + "0123456789" * 8,
    )
    img = _rgb(render_signal_card(card, tmp_path / "card.png", lang=lang))
    bottom = _band_bottom(img, _band_colour(4))
    edge = img[bottom + 2 :, -40:, :]
    assert (edge > 245).all(), "text reaches into the right margin"
    # and the footer is on the image: the last rows are blank margin
    assert (img[-10:, :, :] > 245).all()


def test_exercise_card_has_banner_and_watermark(tmp_path):
    card = _card(level=3)
    plain = _rgb(render_signal_card(card, tmp_path / "plain.png"))
    drill = _rgb(render_signal_card(dataclasses.replace(card, exercise=True), tmp_path / "d.png"))
    assert plain.shape != drill.shape or not np.array_equal(plain, drill)

    band = _band_colour(3)
    bottom = _band_bottom(drill, band)
    assert bottom == _band_bottom(plain, band)  # the banner is under the band, not in it
    row = drill[bottom + 4]
    off_band = np.abs(row - band).max(axis=1) > 30
    off_white = (row < 235).any(axis=1)
    assert (off_band & off_white).mean() > 0.9  # a coloured banner across the width
    assert (plain[bottom + 4] > 245).all()  # the real card has white there
    # the banner carries text: light pixels in its middle rows
    banner = drill[bottom + 10 : bottom + 60, 200:880]
    assert (banner > 230).all(axis=2).sum() > 500

    # the watermark: faint tinted pixels in the white body, none on the real card
    def tinted(img):
        body = img[bottom + 120 :, :, :]
        r, g, b = body[..., 0], body[..., 1], body[..., 2]
        return ((b - g) > 8) & (r > 180) & (b > 200)

    assert tinted(drill).sum() > 20000
    assert tinted(plain).sum() < 100


def test_english_card_renders(tmp_path):
    out = render_signal_card(_card(level=2), tmp_path / "en.png", lang="en")
    img = _rgb(out)
    assert abs(img.shape[1] - 1080) <= 4
    assert np.abs(img[8, -8] - _band_colour(2)).max() <= 3
    drill = render_signal_card(_card(exercise=True), tmp_path / "en_drill.png", lang="en")
    assert drill.stat().st_size > 0


def test_titles():
    assert sc.signal_title(_card()) == "暴雨红色预警信号"
    assert sc.signal_title(_card(), "en") == "Rainstorm red warning signal"
    assert sc.signal_title(_card(level=0)) == "暴雨预警信号解除"
    assert sc.signal_title(_card(level=0), "en") == "Rainstorm warning signal lifted"


@pytest.mark.parametrize("level", [5, -1, 7])
def test_level_out_of_range(tmp_path, level):
    target = tmp_path / "card.png"
    target.write_bytes(b"earlier")
    with pytest.raises(ValueError):
        render_signal_card(_card(level=level), target)
    assert target.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["card.png"]


def test_numpy_level_is_a_level(tmp_path):
    img = _rgb(render_signal_card(_card(level=np.int64(3)), tmp_path / "card.png"))
    assert np.abs(img[8, 8] - _band_colour(3)).max() <= 3
    with pytest.raises(ValueError):
        render_signal_card(_card(level=True), tmp_path / "bool.png")


def test_unknown_language(tmp_path):
    with pytest.raises(ValueError):
        render_signal_card(_card(), tmp_path / "card.png", lang="fr")


def test_written_atomically(tmp_path, monkeypatch):
    calls = []
    real = sc.write_bytes

    def spy(path, data):
        calls.append(path)
        return real(path, data)

    monkeypatch.setattr(sc, "write_bytes", spy)
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "card.png"
    target.write_bytes(b"old")
    render_signal_card(_card(), target)
    render_signal_card(_card(level=1), target)
    assert len(calls) == 2
    assert [p.name for p in folder.iterdir()] == ["card.png"]  # no temporary files left
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dollar_and_math_characters_are_text(tmp_path):
    card = _card(guidance_zh=("损失 $5 万元以上 $x^2$ 的_下划线",), identifier="id-$1$-x")
    assert render_signal_card(card, tmp_path / "card.png").exists()


def test_wrap_display_by_width():
    text = "政府及相关部门按照职责做好防暴雨应急和抢险工作，停止集会、停课、停业。"
    lines = wrap_display(text, 20)
    assert "".join(lines) == text
    assert all(sc._cols(line) <= 20 for line in lines)
    assert not any(line[0] in "，。、；" for line in lines)  # no line starts with punctuation
    english = wrap_display("Stop gatherings, classes and business now", 16)
    assert english == ["Stop gatherings,", "classes and", "business now"]
    assert wrap_display("A" * 25, 10) == ["A" * 10, "A" * 10, "A" * 5]
    assert wrap_display("", 10) == [""]


def test_town_list_breaks_between_towns():
    lines = sc.wrap_items(TOWNS_20, "、", 30)
    assert "".join(lines) == "、".join(TOWNS_20)
    assert all(sc._cols(line) <= 30 for line in lines)
    for line in lines:
        for name in line.rstrip("、").split("、"):
            assert name in TOWNS_20  # no town name split over two lines
