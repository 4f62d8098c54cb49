"""Draws the app icons (PNG, no image library needed): a blue tile with a white check mark
inside a speech bubble. Run it to regenerate app/static/icons/."""

import struct
import zlib
from pathlib import Path

BLUE = (11, 92, 173)
WHITE = (255, 255, 255)
OUT = Path(__file__).resolve().parent.parent / "app" / "static" / "icons"


def _inside_bubble(x: float, y: float) -> bool:
    # A rounded rectangle (the bubble) with a small tail at the lower left.
    if 0.18 <= x <= 0.82 and 0.2 <= y <= 0.68:
        cx = min(max(x, 0.28), 0.72)
        cy = min(max(y, 0.3), 0.58)
        return (x - cx) ** 2 + (y - cy) ** 2 <= 0.1**2
    return 0.28 <= x <= 0.42 and 0.66 <= y <= 0.8 and (x - 0.28) >= (y - 0.66) * 1.0


def _on_check(x: float, y: float) -> bool:
    def near(ax: float, ay: float, bx: float, by: float) -> bool:
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
        px, py = ax + t * dx, ay + t * dy
        return (x - px) ** 2 + (y - py) ** 2 <= 0.045**2

    return near(0.33, 0.45, 0.46, 0.57) or near(0.46, 0.57, 0.68, 0.33)


def draw(size: int, maskable: bool) -> bytes:
    rows = []
    for j in range(size):
        row = bytearray([0])
        for i in range(size):
            x, y = (i + 0.5) / size, (j + 0.5) / size
            if maskable:  # keep the drawing inside the safe zone
                x, y = 0.5 + (x - 0.5) / 0.8, 0.5 + (y - 0.5) / 0.8
            colour = BLUE
            if _inside_bubble(x, y):
                colour = BLUE if _on_check(x, y) else WHITE
            row.extend(colour)
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (180, 192, 512):  # the large ones unchanged by re-running
        (OUT / f"icon-{size}.png").write_bytes(draw(size, maskable=False))
    (OUT / "icon-maskable-512.png").write_bytes(draw(512, maskable=True))
    small = draw(32, maskable=False)
    (OUT / "icon-32.png").write_bytes(small)
    # favicon.ico: one 32x32 image, stored as PNG inside the ICO container (Vista and later).
    entry = struct.pack("<BBBBHHII", 32, 32, 0, 0, 1, 32, len(small), 6 + 16)
    (OUT / "favicon.ico").write_bytes(struct.pack("<HHH", 0, 1, 1) + entry + small)
    print(f"icons written to {OUT}")
