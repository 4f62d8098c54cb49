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
