"""One visual language for every chart the project draws (dashboard pages, their exports, the HTML report).

A configuration's colour is a function of its name alone — never of the order traces happen to be drawn in — so
the same beam search is the same colour on every page and in every export. The hue comes from the strategy or
selection-rule family (Okabe & Ito 2008, "Color Universal Design", a palette told apart under the common colour
vision deficiencies; the families past its seven hues take Paul Tol's "muted" scheme), a configuration within a
family takes one of a few shades of it chosen from a stable hash of its full name, and a model is told apart by
its marker. Pure functions of strings and numbers: no plotly or streamlit import, so the report can use them."""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable

# Okabe–Ito without black (invisible on a dark theme) and yellow (unreadable on white).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7")
TOL_MUTED = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499")
NEUTRAL = "#8C8C8C"  # coverage (the oracle), references: readable on light and dark backgrounds

FAMILY_COLORS: dict[str, str] = {
    "coverage": NEUTRAL,
    "sample": NEUTRAL,
    "majority": OKABE_ITO[0],
    "best_of_n": OKABE_ITO[3],
    "weighted_best_of_n": OKABE_ITO[1],
    "deepconf_weighted": OKABE_ITO[5],
    "deepconf_filtered": TOL_MUTED[8],
    "perplexity_consistency": TOL_MUTED[7],
    "beam_search": OKABE_ITO[4],
    "dvts": OKABE_ITO[2],
    "lookahead": TOL_MUTED[0],
    "particle_filtering": TOL_MUTED[4],
    "rebase": TOL_MUTED[6],
    "sequential_revisions": TOL_MUTED[3],
    "budget_forcing": TOL_MUTED[2],
    "first_finish": TOL_MUTED[5],
}
FALLBACK = OKABE_ITO + TOL_MUTED  # a family not listed above: a stable hash picks one
SHADES = (0.0, -0.28, 0.32)  # variants of one family: the hue, darker, lighter
READABLE = (0.28, 0.68)  # the brightness (0 black, 1 white) a line needs to show on light and dark pages
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
MODEL_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "pentagon", "hexagon", "star-square")
LABEL_MAX = 40
SI_PREFIXES = {-12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E", 21: "Z"}


def _hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def family(configuration: str) -> str:
    """`beam_search[n=4,width=2] · self_verify` -> `beam_search`; `best_of_n[prm]` -> `best_of_n`;
    `coverage (oracle)` -> `coverage`."""
    return re.split(r"[\[\s·(]", configuration.strip(), maxsplit=1)[0] or configuration


def _shade(hex_color: str, amount: float) -> str:
    """Mix towards black (amount < 0) or white (amount > 0)."""
    h = hex_color.lstrip("#")
    rgb = [int(h[i : i + 2], 16) for i in (0, 2, 4)]
    target = 0 if amount < 0 else 255
    mixed = [round(c + (target - c) * abs(amount)) for c in rgb]
    return "#" + "".join(f"{c:02X}" for c in mixed)


def _luma(hex_color: str) -> float:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def readable(hex_color: str) -> str:
    """The colour moved towards white or black just enough that its brightness lies in READABLE: a line that
    shows on a white page and on Streamlit's dark one alike (Tol's indigo and wine vanish on dark, sand on
    white)."""
    lo, hi = READABLE
    out = hex_color.upper()
    for step in range(1, 11):
        if lo <= _luma(out) <= hi:
            break
        out = _shade(hex_color, (0.08 if _luma(hex_color) < lo else -0.08) * step)
    return out


def config_color(configuration: str) -> str:
    """The colour of a configuration everywhere: its family's hue; a configuration with parameters or a verifier
    (`beam_search[n=4]`, `best_of_n[prm]`) one of the family's shades, picked from its full name."""
    fam = family(configuration)
    base = FAMILY_COLORS.get(fam) or FALLBACK[_hash(fam) % len(FALLBACK)]
    if configuration.strip() == fam or fam in ("coverage", "sample"):
        return readable(base)
    return readable(_shade(base, SHADES[_hash(configuration) % len(SHADES)]))


def config_dash(configuration: str) -> str:
    """The line style of a configuration: solid for the family's plain form, else one picked from its name (a
    second cue where two shades of a family sit close)."""
    fam = family(configuration)
    if configuration.strip() == fam:
        return "solid"
    return DASHES[_hash(configuration) % len(DASHES)]


def model_symbol(model: str) -> str:
    """A model's marker, the same on every chart."""
    return MODEL_SYMBOLS[_hash(model) % len(MODEL_SYMBOLS)]


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _abbreviate_params(text: str) -> str:
    """`beam_search[max_rounds=6,max_tokens=48,n=4,width=2]` -> `beam_search[mr=6,mt=48,n=4,w=2]`."""

    def short(m: re.Match) -> str:
        parts = []
        for item in m.group(1).split(","):
            key, eq, value = item.partition("=")
            abbreviated = "".join(w[0] for w in key.strip().split("_") if w) if eq else key
            parts.append(f"{abbreviated}{eq}{value.strip()}")
        return "[" + ",".join(parts) + "]"

    return re.sub(r"\[([^\]]*)\]", short, text)


def _short_model(model: str) -> str:
    m = re.sub(r"-(instruct|chat|it|hf|gguf)$", "", model, flags=re.I)
    return _cut(m, 18)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(n - 1, 1)].rstrip(",=· ") + "…"


def short_label(full: str, limit: int = LABEL_MAX) -> str:
    """A legend label of at most `limit` characters for a configuration label (`model · configuration · verifier`
    or `configuration · verifier`), a function of the label alone (so the same on every page). Steps, each taken only
    while the label is too long: parameter names abbreviated to their initials; the model's name shortened; the
    verifier's name cut; the model dropped (its marker still tells it); the parameter list cut. The strategy's
    name survives. The full label belongs in the hover and the key table; two configurations whose labels
    coincide on one chart are numbered there (see app_pages/_charts.py)."""
    if len(full) <= limit:
        return full
    parts = [_abbreviate_params(p) for p in full.split(" · ")]
    has_model = len(parts) > 1 and "[" not in parts[0] and ("[" in parts[1] or family(parts[1]) in FAMILY_COLORS)
    config = 1 if has_model else 0

    def text() -> str:
        return " · ".join(p for p in parts if p)

    if has_model and len(text()) > limit:
        parts[0] = _short_model(parts[0])
    for i in range(config + 1, len(parts)):  # the verifier, and anything after it
        if len(text()) > limit:
            parts[i] = _cut(parts[i], 10)
    if has_model and len(text()) > limit:
        parts[0] = ""
    head, bracket, inner = parts[config].partition("[")
    if bracket and len(text()) > limit:
        inner = inner.rstrip("]")
        parts[config] = f"{head}[{_cut(inner, max(len(inner) - (len(text()) - limit), 2))}]"
    return _cut(text(), limit)


def eng(x: float, unit: str = "") -> str:
    """Engineering notation: 1e11 -> `100 G`, 2.5e12 -> `2.5 T` (3 significant digits at most)."""
    if x is None or not math.isfinite(x):
        return "—"
    if x == 0:
        return f"0 {unit}".strip()
    exp = int(math.floor(math.log10(abs(x)) / 3) * 3)
    exp = max(min(exp, max(SI_PREFIXES)), min(SI_PREFIXES))
    mantissa = x / 10**exp
    if float(f"{abs(mantissa):.3g}") >= 1000 and exp < max(SI_PREFIXES):  # 999.9 G rounds to 1 T
        exp, mantissa = exp + 3, mantissa / 1000
    text = f"{mantissa:.3g}"
    return f"{text} {SI_PREFIXES[exp]}{unit}".strip()


def money(usd: float, digits: int = 2) -> str:
    """Dollars as people write them, never in scientific notation: `$0.000072`, `$0.43`, `$12.50`, `$1,234`."""
    if usd is None or (isinstance(usd, float) and math.isnan(usd)):
        return "—"
    if not math.isfinite(usd):
        return "∞"
    if usd == 0:
        return "$0"
    sign = "-" if usd < 0 else ""
    a = abs(usd)
    if a >= 100:
        return f"{sign}${a:,.0f}"
    if a >= 1:
        return f"{sign}${a:,.2f}"
    decimals = -math.floor(math.log10(a)) + digits - 1
    text = f"{a:.{decimals}f}".rstrip("0").rstrip(".")
    return f"{sign}${text}"


def money_scale(values: Iterable[float]) -> tuple[int, str]:
    """(multiplier, what one unit is) for a money axis: per 1,000 answers when every finite cost is under a cent
    (a reader compares `$0.72` more easily than `$0.00072`), else per answer."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if finite and max(finite) < 0.01:
        return 1000, "per 1,000 correct answers"
    return 1, "per correct answer"


def money_tick(usd: float) -> str:
    """A money axis label at a decade: `$0.001`, `$1`, `$1,000`."""
    return f"${usd:,.0f}" if usd >= 1 else money(usd)


def count_label(x: float) -> str:
    """A count on an axis: `1`, `10`, `1,000`, then `1 M`."""
    return f"{x:,.0f}" if abs(x) < 1e6 else eng(x)


def decade_ticks(lo: float, hi: float, fmt=count_label) -> dict:
    """A log axis labelled at powers of ten only: tick values and labels, and a range that holds at least two
    decades (a short range is stretched to the nearer decade, then the next) and never begins left of a `lo`
    that is itself a decade (no stray tick left of k = 1). Plotly axis properties."""
    if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)):
        return dict(type="log")
    lo, hi = min(lo, hi), max(lo, hi)
    a, b = math.log10(lo), math.log10(hi)
    while math.floor(b + 1e-9) - math.ceil(a - 1e-9) < 1:  # fewer than two decades inside: reach the nearer one
        below, above = a - math.floor(a), math.ceil(b) - b
        if below > 0 and (below <= above or above == 0):
            a = math.floor(a)
        else:
            b = math.ceil(b) if b != math.ceil(b) else b + 1
    pad = 0.03 * (b - a)
    decades = range(math.ceil(a - pad - 1e-9), math.floor(b + pad + 1e-9) + 1)  # every decade the axis shows
    values = [10.0**d for d in decades]
    return dict(
        type="log",
        tickmode="array",
        tickvals=values,
        ticktext=[fmt(v) for v in values],
        range=[a - pad, b + pad],
        minor=dict(ticks="", showgrid=False),
    )


# The light look of an exported chart, the same as the page in Streamlit's light theme (its background, text and
# grid colours and font), so a PNG, SVG or HTML file looks like what the user saw.
LIGHT_LAYOUT: dict = dict(
    template="plotly_white",
    paper_bgcolor="#FFFFFF",
    plot_bgcolor="#FFFFFF",
    font=dict(family='"Source Sans Pro", "Source Sans 3", Helvetica, Arial, sans-serif', color="#31333F", size=13),
)
LIGHT_GRID = "#E6EAF1"
