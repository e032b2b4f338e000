"""Grid images: pure functions from grids to PNG bytes (no Streamlit here).

Images are palette ("P" mode) PNGs: one byte per pixel with the official ARC
palette, thin grey cell lines, and optional cell numbers drawn from a tiny
bitmap font. They are small and lossless, so colours never smear (the app
passes ``output_format="PNG"`` to ``st.image``).
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

#: Official ARC palette (fchollet/ARC testing interface), colours 0-9.
PALETTE_HEX = [
    "#000000",
    "#0074D9",
    "#FF4136",
    "#2ECC40",
    "#FFDC00",
    "#AAAAAA",
    "#F012BE",
    "#FF851B",
    "#7FDBFF",
    "#870C25",
]
LINE = 10  # palette index of the cell lines
TEXT_LIGHT = 11  # cell-number ink on dark cells
TEXT_DARK = 12  # cell-number ink on light cells
BACKDROP = 13  # space between grids in composite images
WRONG = 14  # diff marks
_EXTRA_HEX = ["#555555", "#FFFFFF", "#111111", "#F0F2F6", "#FF00FF"]


def _hex(h: str) -> tuple[int, int, int]:
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)


PALETTE_RGB = np.array([_hex(h) for h in PALETTE_HEX + _EXTRA_HEX], dtype=np.uint8)
_PALETTE_BYTES = PALETTE_RGB.tobytes()
_DARK_COLOURS = np.array([1, 1, 0, 0, 0, 0, 1, 0, 0, 1], dtype=bool)  # colours that get light numbers

# 3x5 bitmap digits
_FONT_ROWS = {
    0: ["111", "101", "101", "101", "111"],
    1: ["010", "110", "010", "010", "111"],
    2: ["111", "001", "111", "100", "111"],
    3: ["111", "001", "111", "001", "111"],
    4: ["101", "101", "111", "001", "001"],
    5: ["111", "100", "111", "001", "111"],
    6: ["111", "100", "111", "101", "111"],
    7: ["111", "001", "010", "010", "010"],
    8: ["111", "101", "111", "101", "111"],
    9: ["111", "101", "111", "001", "111"],
}
_FONT = np.array([[[c == "1" for c in row] for row in _FONT_ROWS[d]] for d in range(10)], dtype=bool)


def cell_size_for(shape: tuple[int, int], target: int = 240, lo: int = 6, hi: int = 24) -> int:
    """A cell size (pixels) so that the grid's longer side is about ``target`` pixels."""
    return int(max(lo, min(hi, target // max(shape))))


@lru_cache(maxsize=64)
def _glyphs(cell: int) -> np.ndarray | None:
    """Digit masks of size (10, cell, cell), or None when the cell is too small for numbers."""
    scale = (cell - 2) // 6
    if scale < 1:
        return None
    g = _FONT.repeat(scale, 1).repeat(scale, 2)  # (10, 5s, 3s)
    out = np.zeros((10, cell, cell), dtype=bool)
    gh, gw = g.shape[1:]
    y0, x0 = (cell - gh) // 2, (cell - gw) // 2 + (1 if (cell - gw) % 2 else 0)
    out[:, y0 : y0 + gh, x0 : x0 + gw] = g
    return out


def grid_index_image(grid: np.ndarray, cell: int = 16, numbers: bool = False, line: int = 1) -> np.ndarray:
    """Palette-index image of a grid: (h*cell + line, w*cell + line) uint8."""
    g = np.asarray(grid, dtype=np.uint8)
    h, w = g.shape
    img = np.repeat(np.repeat(g, cell, axis=0), cell, axis=1)
    if numbers:
        glyphs = _glyphs(cell)
        if glyphs is not None:
            ink = np.where(_DARK_COLOURS[g], TEXT_LIGHT, TEXT_DARK).astype(np.uint8)
            mask = glyphs[g]  # (h, w, cell, cell)
            mask = mask.transpose(0, 2, 1, 3).reshape(h * cell, w * cell)
            inkimg = np.repeat(np.repeat(ink, cell, axis=0), cell, axis=1)
            img = np.where(mask, inkimg, img)
    if line:
        out = np.full((h * cell + line, w * cell + line), LINE, dtype=np.uint8)
        out[line:, line:] = img[:, :]
        # redraw the grid lines over the cells (the first `line` px of each cell)
        for k in range(line):
            out[:, k::cell] = LINE
            out[k::cell, :] = LINE
        return out
    return img


def encode_png(index_img: np.ndarray) -> bytes:
    im = Image.frombuffer(
        "P", (index_img.shape[1], index_img.shape[0]), np.ascontiguousarray(index_img), "raw", "P", 0, 1
    )
    im.putpalette(_PALETTE_BYTES)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def grid_png(grid: np.ndarray, cell: int | None = None, numbers: bool = False) -> bytes:
    """PNG bytes of one grid with ARC colours and thin grey cell lines."""
    g = np.asarray(grid)
    cell = cell or cell_size_for(g.shape)
    return encode_png(grid_index_image(g, cell, numbers=numbers, line=1))


def _arrow(height: int, width: int) -> np.ndarray:
    """A small right-pointing arrow on the backdrop (between an input and its output)."""
    img = np.full((height, width), BACKDROP, dtype=np.uint8)
    mid = height // 2
    x0, x1 = width // 5, width - width // 5
    img[max(0, mid - 1) : mid + 1, x0:x1] = LINE
    head = max(1, min((x1 - x0) // 2, height // 2))
    for k in range(head):
        x = x1 - 1 - k
        img[max(0, mid - k - 1) : mid + k + 1, x] = LINE
    return img


def hstack_images(images: list[np.ndarray], gap: int = 6, arrows: bool = False) -> np.ndarray:
    """Place index images side by side, vertically centred, on the backdrop colour."""
    h = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        if i:
            parts.append(_arrow(h, max(gap, 12)) if arrows else np.full((h, gap), BACKDROP, dtype=np.uint8))
        pad_top = (h - im.shape[0]) // 2
        col = np.full((h, im.shape[1]), BACKDROP, dtype=np.uint8)
        col[pad_top : pad_top + im.shape[0]] = im
        parts.append(col)
    return np.concatenate(parts, axis=1)


def pair_png(inp: np.ndarray, out: np.ndarray | None, cell: int | None = None, numbers: bool = False) -> bytes:
    """An input -> output pair in one PNG (the output side is omitted when unknown)."""
    grids = [np.asarray(inp)] + ([np.asarray(out)] if out is not None else [])
    cell = cell or min(cell_size_for(g.shape) for g in grids)
    ims = [grid_index_image(g, cell, numbers=numbers) for g in grids]
    return encode_png(hstack_images(ims, gap=cell * 2, arrows=True))


def task_thumbnail_png(task, size: int = 96) -> bytes:
    """Thumbnail of a task: its first train pair, each grid about ``size`` pixels on its longer side."""
    p = task.train[0]
    cell = max(2, min(12, size // max(max(p.input.shape), max(p.output.shape))))
    ims = [grid_index_image(p.input, cell), grid_index_image(p.output, cell)]
    return encode_png(hstack_images(ims, gap=max(10, cell * 2), arrows=True))


#: the app's favicon: a 3x3 ARC grid (rendered here, so the browser never fetches an icon font from the internet)
ICON_GRID = np.array([[1, 0, 2], [0, 4, 0], [3, 0, 8]], dtype=np.uint8)


def icon_png() -> bytes:
    """The app's page icon as PNG bytes."""
    return grid_png(ICON_GRID, cell=10)
