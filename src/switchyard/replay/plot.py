"""A cost–quality chart as one self-contained SVG: no scripts, no fonts to fetch, no plotting library.

x is total cost (a log scale when the costs span more than a factor of 20), y the
resolved share. Single models are grey dots, configs coloured diamonds, the
oracle a star with its frontier (the k cheapest-to-resolve tasks, k = 1..n) as a
line: no policy that routes on the same outcomes can be above and left of it.
The same inputs always give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from xml.sax.saxutils import escape

from switchyard._records import record

__all__ = ["PlotPoint", "cost_quality_svg"]

_W, _H = 860, 540
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 250, 50, 60
_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@record
class PlotPoint:
    """One policy on the chart."""

    name: str
    kind: str  # model | config | oracle
    cost_usd: Decimal
    share: float


def _fmt_money(v: float) -> str:
    if v >= 100:
        return f"${v:,.0f}"
    if v >= 1:
        return f"${v:.1f}".replace(".0", "") if v == int(v) else f"${v:.1f}"
    return f"${v:.2g}"


def _ticks_log(lo: float, hi: float) -> list[float]:
    out = []
    e = math.floor(math.log10(lo))
    while 10**e <= hi * 1.0001:
        for m in (1, 2, 5):
            v = m * 10**e
            if lo * 0.9999 <= v <= hi * 1.0001:
                out.append(float(v))
        e += 1
    return out


def _ticks_linear(lo: float, hi: float, n: int = 6) -> list[float]:
    span = hi - lo or 1.0
    raw = span / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.ceil(lo / step) * step
    out = []
    v = start
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def cost_quality_svg(
    points: Sequence[PlotPoint],
    *,
    frontier: Sequence[tuple[Decimal, float]] = (),
    title: str = "Cost and resolved share",
    note: str = "",
) -> str:
    """The chart as SVG text."""
    # The axes fit the policies; the oracle frontier is drawn where it crosses that range.
    costs = [float(p.cost_usd) for p in points if p.cost_usd > 0] or [float(c) for c, _ in frontier if c > 0]
    shares = [p.share for p in points] or [s for _, s in frontier]
    lo_c = min(costs, default=1.0)
    hi_c = max(costs, default=1.0)
    log = hi_c / lo_c > 20
    if log:
        lo_c, hi_c = lo_c / 1.3, hi_c * 1.3
    else:
        pad = (hi_c - lo_c) * 0.08 or max(hi_c * 0.1, 0.01)
        lo_c, hi_c = max(0.0, lo_c - pad), hi_c + pad
    lo_s = max(0.0, math.floor((min(shares, default=0.0) - 0.03) * 20) / 20)
    hi_s = min(1.0, math.ceil((max(shares, default=1.0) + 0.03) * 20) / 20)
    if hi_s <= lo_s:
        lo_s, hi_s = 0.0, 1.0
    plot_w = _W - _LEFT - _RIGHT
    plot_h = _H - _TOP - _BOTTOM

    def x(cost: float) -> float:
        if log:
            c = max(cost, lo_c)
            return _LEFT + plot_w * (math.log(c) - math.log(lo_c)) / (math.log(hi_c) - math.log(lo_c))
        return _LEFT + plot_w * (cost - lo_c) / (hi_c - lo_c)

    def y(share: float) -> float:
        return _TOP + plot_h * (1 - (share - lo_s) / (hi_s - lo_s))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect width="{_W}" height="{_H}" fill="#ffffff"/>',
        f'<text x="{_LEFT}" y="24" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    # axes and grid
    for t in _ticks_log(lo_c, hi_c) if log else _ticks_linear(lo_c, hi_c):
        px = x(t)
        out.append(f'<line x1="{px:.1f}" y1="{_TOP}" x2="{px:.1f}" y2="{_TOP + plot_h}" stroke="#eeeeee"/>')
        out.append(
            f'<text x="{px:.1f}" y="{_TOP + plot_h + 16}" text-anchor="middle" fill="#555555">{_fmt_money(t)}</text>'
        )
    for t in _ticks_linear(lo_s, hi_s, 8):
        py = y(t)
        out.append(f'<line x1="{_LEFT}" y1="{py:.1f}" x2="{_LEFT + plot_w}" y2="{py:.1f}" stroke="#eeeeee"/>')
        out.append(f'<text x="{_LEFT - 6}" y="{py + 4:.1f}" text-anchor="end" fill="#555555">{t * 100:.0f}%</text>')
    out.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999999"/>'
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_H - 22}" text-anchor="middle">total cost'
        f"{' (log scale)' if log else ''}</text>"
        f'<text x="16" y="{_TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {_TOP + plot_h / 2:.1f})">resolved share</text>'
    )
    if note:
        out.append(f'<text x="{_LEFT}" y="{_H - 6}" font-size="9" fill="#777777">{escape(note)}</text>')
    # oracle frontier, from where it enters the chart
    path = [(float(c), s) for c, s in frontier if float(c) >= lo_c and lo_s <= s <= hi_s]
    if len(path) > 1:
        pts = " ".join(f"{x(c):.1f},{y(s):.1f}" for c, s in path)
        out.append(f'<polyline points="{pts}" fill="none" stroke="#444444" stroke-dasharray="4 3"/>')
    # points: models first (numbered, listed on the right), so configs draw on top
    labels: list[tuple[float, float, str, str, str]] = []
    colour = iter(_COLOURS * 10)
    models = sorted((p for p in points if p.kind == "model"), key=lambda p: (-p.share, p.cost_usd, p.name))
    legend_y: float = _TOP + 4
    for n, p in enumerate(models, 1):
        px, py = x(float(p.cost_usd)), y(p.share)
        tip = f"{p.name}: {p.share * 100:.1f}% for ${p.cost_usd.quantize(Decimal('0.01'))}"
        out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="#9e9e9e"><title>{escape(tip)}</title></circle>')
        labels.append((px, py, str(n), "#666666", "normal"))
        name = p.name if len(p.name) <= 38 else p.name[:37] + "…"
        out.append(
            f'<text x="{_W - _RIGHT + 12}" y="{legend_y:.1f}" font-size="10" fill="#555555">'
            f"{n:>2}  {escape(name)}</text>"
        )
        legend_y += 12.5
    for p in sorted((p for p in points if p.kind != "model"), key=lambda p: (p.kind != "oracle", p.name)):
        px, py = x(float(p.cost_usd)), y(p.share)
        tip = f"{p.name}: {p.share * 100:.1f}% for ${p.cost_usd.quantize(Decimal('0.01'))}"
        if p.kind == "oracle":
            out.append(_star(px, py, tip))
            labels.append((px, py, p.name, "#222222", "bold"))
        else:
            c = next(colour)
            out.append(
                f'<path d="M{px:.1f},{py - 7:.1f} L{px + 7:.1f},{py:.1f} L{px:.1f},{py + 7:.1f} L{px - 7:.1f},{py:.1f} Z" '
                f'fill="{c}" stroke="#ffffff"><title>{escape(tip)}</title></path>'
            )
            labels.append((px, py, p.name, c, "bold"))
    out += _labels(labels)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _star(cx: float, cy: float, tip: str) -> str:
    pts = []
    for i in range(10):
        r = 8 if i % 2 == 0 else 3.5
        a = math.pi / 2 + i * math.pi / 5
        pts.append(f"{cx + r * math.cos(a):.1f},{cy - r * math.sin(a):.1f}")
    return f'<polygon points="{" ".join(pts)}" fill="#222222"><title>{escape(tip)}</title></polygon>'


def _labels(items: list[tuple[float, float, str, str, str]]) -> list[str]:
    """Place each label right of its point, nudged down or up so labels do not overlap."""
    placed: list[tuple[float, float, float]] = []  # (x0, x1, y)
    out = []
    for px, py, name, colour, weight in sorted(items, key=lambda it: (it[1], it[0])):
        text = name if len(name) <= 34 else name[:33] + "…"
        width = 6.0 * len(text)
        x0 = px + 8
        ty = py + 4
        for step in range(40):  # try below, above, further below, ...
            ty = py + 4 + (step + 1) // 2 * 11 * (1 if step % 2 else -1)
            if all(abs(ty - yy) >= 11 or x0 + width < a or x0 > b for a, b, yy in placed):
                break
        placed.append((x0, x0 + width, ty))
        if abs(ty - (py + 4)) > 12:
            out.append(f'<line x1="{px:.1f}" y1="{py:.1f}" x2="{x0 - 1:.1f}" y2="{ty - 4:.1f}" stroke="#cccccc"/>')
        out.append(f'<text x="{x0:.1f}" y="{ty:.1f}" fill="{colour}" font-weight="{weight}">{escape(text)}</text>')
    return out
