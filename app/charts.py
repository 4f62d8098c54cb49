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


UNDEFINED_PAIR = (
    "kappa cannot be computed for this pair: between them they used a single level, so there "
    "is no variation to agree on (their exact agreement is shown in the table)"
)


def heatmap(names: list[str], values: dict[tuple[int, int], float | None], *, title: str) -> str:
    """A rater x rater grid coloured by agreement (red below 0, blue above), values written in."""
    n = len(names)
    cell, label_w = 44, 120
    size = label_w + n * cell
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" width="{size}" '
        f'role="img" '
        f'aria-label="{escape(title)}" class="chart heatmap"><title>{escape(title)}</title>'
    ]
    for i, name in enumerate(names):
        y = label_w + i * cell + cell / 2 + 5
        parts.append(
            f'<text x="{label_w - 6}" y="{y}" font-size="12" text-anchor="end">'
            f"{escape(name[:16])}</text>"
        )
        x = label_w + i * cell + cell / 2
        parts.append(
            f'<text x="{x}" y="{label_w - 6}" font-size="12" text-anchor="start" '
            f'transform="rotate(-45 {x} {label_w - 6})">{escape(name[:16])}</text>'
        )
    for (i, j), value in values.items():
        x, y = label_w + j * cell, label_w + i * cell
        if value is None:
            # Undefined, not missing: said in the cell and in its tooltip.
            fill, text = "#eceff3", "n/a"
        else:
            v = max(-1.0, min(1.0, value))
            shade = int(255 - abs(v) * 200)
            fill = f"rgb({shade},{shade},255)" if v >= 0 else f"rgb(255,{shade},{shade})"
            text = f"{value:.2f}"
        parts.append(
            f'<rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{fill}">'
            f"<title>{escape(names[i])} / {escape(names[j])}: "
            f"{text if value is not None else UNDEFINED_PAIR}</title></rect>"
            f'<text x="{x + cell / 2 - 1}" y="{y + cell / 2 + 4}" font-size="11" '
            f'text-anchor="middle">{text}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
