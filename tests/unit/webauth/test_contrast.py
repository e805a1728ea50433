"""Every colour pair the apps' stylesheets draw text or a control's edge in reaches WCAG 2.2
AA's contrast (1.4.3: 4.5:1 for text; 1.4.11: 3:1 for a control's boundary), read from the
stylesheets themselves (custom properties resolved), so a colour changed there is checked."""

from __future__ import annotations

import re
from importlib import resources

import pytest

SHEETS = {
    "accord.css": resources.files("broker.webauth").joinpath("static/accord.css"),
    "desk.css": resources.files("broker.desk").joinpath("static/desk.css"),
}
WHITE = "#ffffff"
TEXT = 4.5
CONTROL = 3.0


def _hex(value: str) -> str | None:
    value = value.strip().lower()
    if value in ("#fff", "white"):
        return WHITE
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        return "#" + "".join(c * 2 for c in value[1:])
    return value if re.fullmatch(r"#[0-9a-f]{6}", value) else None


def _rules() -> list[tuple[str, str, dict[str, str]]]:
    """(sheet, selector, declarations) of every rule, var(--x) resolved from :root."""
    found: list[tuple[str, str, dict[str, str]]] = []
    for name, sheet in SHEETS.items():
        text = re.sub(r"/\*.*?\*/", "", sheet.read_text("utf-8"), flags=re.S)
        for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
            decls = {
                k.strip(): v.strip()
                for k, _, v in (d.partition(":") for d in body.split(";"))
                if v.strip()
            }
            found.append((name, selector.strip(), decls))
    root = {k: v for _, s, d in found if s == ":root" for k, v in d.items()}

    def resolve(v: str) -> str:
        return re.sub(r"var\((--[\w-]+)\)", lambda m: root[m.group(1)], v)

    return [(n, s, {k: resolve(v) for k, v in d.items()}) for n, s, d in found if s != ":root"]


def _colour(decls: dict[str, str], *props: str) -> str | None:
    for prop in props:
        if prop in decls:
            # A shorthand (border: 2px solid #abc) holds its colour among other words.
            for word in decls[prop].split():
                if (c := _hex(word)) is not None:
                    return c
    return None


def _luminance(colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


RULES = _rules()
ROOT_BG = _hex(
    next(d["background"] for _, s, d in RULES if s == "body")  # the page's own background
)


def _backgrounds() -> dict[str, str]:
    return {
        f"{n}: {s}": c
        for n, s, d in RULES
        if (c := _colour(d, "background", "background-color", "fill")) is not None
    }


def test_the_wcag_ratio_is_computed_as_the_standard_defines_it() -> None:
    assert ratio("#000000", WHITE) == pytest.approx(21)
    assert ratio(WHITE, WHITE) == pytest.approx(1)
    assert ratio("#767676", WHITE) == pytest.approx(4.54, abs=0.01)
    # The audit's findings, had they stayed: each below 4.5.
    assert ratio(WHITE, "#c77700") < TEXT
    assert ratio(WHITE, "#8a96a0") < TEXT


def test_every_rule_that_sets_text_and_background_colours_reads_at_4_5_to_1() -> None:
    pairs = [
        (f"{n}: {s}", fg, bg)
        for n, s, d in RULES
        if (fg := _colour(d, "color")) is not None
        and (bg := _colour(d, "background", "background-color")) is not None
    ]
    assert len(pairs) >= 5  # the header, buttons, badges, the banner's title
    low = [(where, fg, bg, round(ratio(fg, bg), 2)) for where, fg, bg in pairs
           if ratio(fg, bg) < TEXT]  # fmt: skip
    assert low == []


def test_coloured_text_reads_on_every_light_background_it_may_sit_on() -> None:
    """Text colours (errors, warnings, muted notes) on the page, cards, table headers and
    tinted rows and boxes; the ink on every light background (badges' and rows' too)."""
    assert ROOT_BG is not None
    light = {w: c for w, c in _backgrounds().items() if _luminance(c) > 0.4}
    light["page"], light["card"] = ROOT_BG, WHITE
    texts = {
        f"{n}: {s}": c
        for n, s, d in RULES
        if (c := _colour(d, "color")) is not None and c != WHITE
        and _colour(d, "background", "background-color") is None
    }  # fmt: skip
    body = next(_colour(d, "color") for _, s, d in RULES if s == "body")
    assert body is not None
    # Where text sits: the page, cards, table cells and headers, rows, the tinted boxes.
    surfaces = {w: c for w, c in light.items()
                if not re.search(r"\.need|\.swatch|\.o-", w)}  # fmt: skip
    assert {"#fde2e1", "#eef2f4", "#e8f1fb"} <= set(surfaces.values())
    low = [(t, s, round(ratio(fg, bg), 2)) for t, fg in texts.items()
           for s, bg in surfaces.items() if ratio(fg, bg) < TEXT]  # fmt: skip
    low += [("body", s, round(ratio(body, bg), 2)) for s, bg in light.items()
            if ratio(body, bg) < TEXT]  # fmt: skip
    assert low == []


def test_white_text_reads_on_every_dark_background() -> None:
    """Outcome badges, the bar at the top, buttons: white on the colour behind them."""
    dark = {w: c for w, c in _backgrounds().items() if _luminance(c) <= 0.4}
    assert {"#8a5300", "#5b6b76", "#27702b", "#005eb8"} <= set(dark.values())
    low = [(w, round(ratio(WHITE, c), 2)) for w, c in dark.items() if ratio(WHITE, c) < TEXT]
    assert low == []


def test_controls_and_chart_keys_stand_out_at_3_to_1() -> None:
    """A field's edge, a button, a legend's chip and a chart's bars against the page."""
    assert ROOT_BG is not None
    edges = {f"{n}: {s}": c for n, s, d in RULES
             if re.search(r"\binput\b|aria-invalid|\.swatch", s)
             and (c := _colour(d, "border")) is not None}  # fmt: skip
    assert len(edges) >= 2
    keys = {w: c for w, c in _backgrounds().items() if re.search(r"\.o-|: button$", w)}
    low = [(w, bg, round(ratio(c, bg), 2)) for w, c in {**edges, **keys}.items()
           for bg in (WHITE, ROOT_BG) if ratio(c, bg) < CONTROL]  # fmt: skip
    assert low == []
