"""Small server-rendered SVG charts (no chart library, nothing to download, prints well)."""

from html import escape

# A sequential palette with enough contrast between neighbours, light to dark.
PALETTE = ["#d7e3f4", "#a9c4ea", "#6f9bd8", "#3f72bd", "#1d4f91", "#0b2f63", "#061b3a"]


def stacked_bars(
    rows: list[tuple[str, list[int]]], series: list[str], *, title: str, width: int = 640
) -> str:
    """Horizontal 100% stacked bars, one row per group, with counts written on each segment."""
    label_w, bar_h, gap, legend_h = 170, 30, 10, 34
    bar_w = width - label_w - 60
    height = legend_h + max(1, len(rows)) * (bar_h + gap) + 4
    colours = [PALETTE[min(i, len(PALETTE) - 1)] for i in range(len(series))]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    x = 0
    for name, colour in zip(series, colours, strict=True):
        parts.append(
            f'<rect x="{x}" y="4" width="16" height="16" fill="{colour}" stroke="#5a6b7d"/>'
        )
        parts.append(f'<text x="{x + 22}" y="17" font-size="13">{escape(name)}</text>')
        x += 30 + 8 * len(name)
    if not rows:
        parts.append(f'<text x="0" y="{legend_h + 20}" font-size="14">No ratings yet</text>')
    for r, (group, counts) in enumerate(rows):
        y = legend_h + r * (bar_h + gap)
        total = sum(counts)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar_h / 2 + 5}" font-size="14" '
            f'text-anchor="end">{escape(group)}</text>'
        )
        offset = 0.0
        for count, colour, name in zip(counts, colours, series, strict=True):
            if not count:
                continue
            w = bar_w * count / total
            parts.append(
                f'<rect x="{label_w + offset:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                f'fill="{colour}"><title>{escape(group)}: {escape(name)}: {count}</title></rect>'
            )
            dark = colours.index(colour) >= 3
            if w >= 22:
                parts.append(
                    f'<text x="{label_w + offset + w / 2:.1f}" y="{y + bar_h / 2 + 5}" '
                    f'font-size="13" '
                    f'text-anchor="middle" fill="{"#fff" if dark else "#1b1f24"}">{count}</text>'
                )
            offset += w
        parts.append(
            f'<text x="{label_w + bar_w + 6}" y="{y + bar_h / 2 + 5}" font-size="13">'
            f"n={total}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def level_bars(
    rows: list[tuple[str, list[int], int | None]], levels: list[str], *, title: str
) -> str:
    """One 100% bar per row (an excerpt) with its title above it, the count on each segment
    and the master's level marked: outlined, with a caret and "master" under it. Drawn at its
    own pixel size (it only shrinks below 400 px), so a phone shows it nearly full size;
    the colour key is HTML beside it (see `legend`)."""
    width, bar_h, label_h, mark_h, gap = 400, 28, 22, 20, 10
    bar_w = width - 58
    row_h = label_h + bar_h + mark_h + gap
    height = max(1, len(rows)) * row_h
    colours = [PALETTE[min(i, len(PALETTE) - 1)] for i in range(len(levels))]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'class="chart level-bars"><title>{escape(title)}</title>'
    ]
    for r, (label, counts, master) in enumerate(rows):
        y0 = r * row_h
        short = label if len(label) <= 52 else label[:51] + "…"
        parts.append(
            f'<text x="0" y="{y0 + 15}" font-size="14" font-weight="600">{escape(short)}</text>'
        )
        y = y0 + label_h
        total = sum(counts)
        if not total:
            parts.append(f'<text x="0" y="{y + 19}" font-size="14">No ratings</text>')
            continue
        offset = 0.0
        spans = []
        for i, count in enumerate(counts):
            w = bar_w * count / total
            spans.append((offset, w))
            if count:
                parts.append(
                    f'<rect x="{offset:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                    f'fill="{colours[i]}"><title>{escape(label)}: {escape(levels[i])}: {count}'
                    "</title></rect>"
                )
                if w >= 18:
                    ink = "#fff" if i >= 3 else "#1b1f24"
                    parts.append(
                        f'<text x="{offset + w / 2:.1f}" y="{y + 19}" font-size="14" '
                        f'text-anchor="middle" fill="{ink}">{count}</text>'
                    )
            offset += w
        parts.append(f'<text x="{bar_w + 6}" y="{y + 19}" font-size="13">n={total}</text>')
        if master is not None and 0 <= master < len(levels):
            x, w = spans[master]
            if w > 0:
                parts.append(
                    f'<rect x="{x + 1.5:.1f}" y="{y + 1.5}" width="{max(w - 3, 1):.1f}" '
                    f'height="{bar_h - 3}" fill="none" stroke="#b3261e" stroke-width="3" '
                    "data-master-mark/>"
                )
            cx = x + w / 2
            tx = min(max(cx, 52), bar_w - 52)
            parts.append(
                f'<path d="M{cx:.1f} {y + bar_h + 1} l-6 8 h12 z" fill="#b3261e"/>'
                f'<text x="{tx:.1f}" y="{y + bar_h + 20}" font-size="13" text-anchor="middle" '
                f'fill="#b3261e">master: {escape(levels[master])}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def legend(levels: list[str]) -> str:
    """The colour key of `level_bars` as HTML (readable at any width; wraps on a phone)."""
    items = "".join(
        f'<li><span class="swatch swatch-{min(i, len(PALETTE) - 1)}" aria-hidden="true"></span>'
        f"{escape(name)}</li>"
        for i, name in enumerate(levels)
    )
    return f'<ul class="legend">{items}</ul>'


UNDEFINED_PAIR = (
    "kappa cannot be computed for this pair: between them they used a single level, so there "
    "is no variation to agree on (their exact agreement is shown in the table)"
)


def heatmap(names: list[str], values: dict[tuple[int, int], float | None], *, title: str) -> str:
    """A rater x rater grid coloured by agreement (red below 0, blue above), values written in.
    Rows carry the numbered full names (to 40 characters), columns the numbers; cells are
    44 px and the grid is drawn at its pixel size (a phone scrolls it rather than shrinking
    the text). Each name is marked `data-r` so a page can point out the viewer's own row."""
    n = len(names)
    cell, top = 44, 28
    shown = [name if len(name) <= 40 else name[:39] + "…" for name in names]
    label_w = min(320, 40 + 8 * max((len(x) for x in shown), default=4))
    width, height = label_w + n * cell, top + n * cell
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}" class="chart heatmap"><title>{escape(title)}</title>'
    ]
    for i, name in enumerate(shown):
        y = top + i * cell + cell / 2 + 5
        parts.append(
            f'<text x="{label_w - 8}" y="{y}" font-size="14" text-anchor="end">'
            f'<tspan font-weight="600">{i + 1}</tspan> '
            f'<tspan data-r="{escape(names[i])}">{escape(name)}</tspan></text>'
        )
        x = label_w + i * cell + cell / 2
        parts.append(
            f'<text x="{x}" y="{top - 8}" font-size="14" font-weight="600" '
            f'text-anchor="middle">{i + 1}</text>'
        )
    for (i, j), value in values.items():
        x, y = label_w + j * cell, top + i * cell
        if value is None:
            # Undefined, not missing: said in the cell and in its tooltip.
            fill, text = "#eceff3", "n/a"
        else:
            v = max(-1.0, min(1.0, value))
            shade = int(255 - abs(v) * 200)
            fill = f"rgb({shade},{shade},255)" if v >= 0 else f"rgb(255,{shade},{shade})"
            text = f"{value:.2f}"
        ink = "#fff" if value is not None and abs(value) > 0.75 else "#1b1f24"
        parts.append(
            f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{fill}">'
            f"<title>{escape(names[i])} / {escape(names[j])}: "
            f"{text if value is not None else UNDEFINED_PAIR}</title></rect>"
            f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 5}" font-size="13" '
            f'text-anchor="middle" fill="{ink}">{text}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def value_bars(
    rows: list[tuple[str, float | None, int, bool]],
    *,
    title: str,
    maximum: float,
    fmt: str = "{:.0%}",
    width: int = 640,
) -> str:
    """One horizontal bar per group (a share, a mean) on a common scale, its value and n written
    beside it; a small group (True) is drawn hatched-light and marked "small"."""
    label_w, bar_h, gap = 170, 26, 10
    bar_w = width - label_w - 150
    height = max(1, len(rows)) * (bar_h + gap) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart value-bars">',
        f"<title>{escape(title)}</title>",
    ]
    if not rows:
        parts.append('<text x="0" y="20" font-size="14">No visits yet</text>')
    top = maximum if maximum > 0 else 1
    for r, (group, value, n, small) in enumerate(rows):
        y = r * (bar_h + gap)
        short = group if len(group) <= 22 else group[:21] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar_h / 2 + 5}" font-size="14" '
            f'text-anchor="end">{escape(short)}<title>{escape(group)}</title></text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{bar_w}" height="{bar_h}" fill="#f1f4f8"/>'
        )
        shown = "—" if value is None else fmt.format(value)
        if value is not None and value > 0:
            w = bar_w * min(value / top, 1)
            fill = PALETTE[2] if small else PALETTE[4]
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{fill}">'
                f"<title>{escape(group)}: {escape(shown)} (n={n})</title></rect>"
            )
        note = f"{shown}  n={n}" + ("  small" if small else "")
        parts.append(
            f'<text x="{label_w + bar_w + 6}" y="{y + bar_h / 2 + 5}" font-size="13">'
            f"{escape(note)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def trend_line(
    points: list[tuple[str, float | None, int]],
    *,
    title: str,
    maximum: float,
    fmt: str = "{:.0%}",
    width: int = 640,
) -> str:
    """A line over periods (months) with each point's value and n written under the axis; a
    period without visits leaves a gap rather than a false zero."""
    left, right, top_pad, plot_h = 48, 16, 22, 160
    height = top_pad + plot_h + 46
    step = (width - left - right) / max(len(points), 1)
    top = maximum if maximum > 0 else 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" class="chart trend-line">',
        f"<title>{escape(title)}</title>",
    ]
    for frac in (0, 0.5, 1):
        y = top_pad + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d5dbe3"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="12" text-anchor="end">'
            f"{escape(fmt.format(top * frac))}</text>"
        )
    path: list[str] = []
    for i, (label, value, n) in enumerate(points):
        x = left + step * (i + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{top_pad + plot_h + 18}" font-size="12" '
            f'text-anchor="middle">{escape(label)}</text>'
            f'<text x="{x:.1f}" y="{top_pad + plot_h + 34}" font-size="11" '
            f'text-anchor="middle" fill="#4a5563">n={n}</text>'
        )
        if value is None:
            path.append("")
            continue
        y = top_pad + plot_h * (1 - min(value / top, 1))
        path.append(f"{x:.1f} {y:.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{PALETTE[4]}">'
            f"<title>{escape(label)}: {escape(fmt.format(value))} (n={n})</title></circle>"
        )
    segment: list[str] = []
    for point in [*path, ""]:
        if point:
            segment.append(point)
            continue
        if len(segment) > 1:
            parts.append(
                f'<path d="M{" L".join(segment)}" fill="none" stroke="{PALETTE[4]}" '
                'stroke-width="3"/>'
            )
        segment = []
    parts.append("</svg>")
    return "".join(parts)
