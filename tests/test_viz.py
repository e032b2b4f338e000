"""Grid images are lossless palette PNGs with the official ARC colours."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ttft.core.data import Pair, Task
from ttft.views import grids as viz

OFFICIAL = {
    0: "#000000",
    1: "#0074D9",
    2: "#FF4136",
    3: "#2ECC40",
    4: "#FFDC00",
    5: "#AAAAAA",
    6: "#F012BE",
    7: "#FF851B",
    8: "#7FDBFF",
    9: "#870C25",
}


def rgb(png: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG"
    return np.asarray(im.convert("RGB"))


def hex_of(px) -> str:
    r, g, b = (int(v) for v in px[:3])
    return f"#{r:02X}{g:02X}{b:02X}"


def test_palette_is_official():
    assert viz.PALETTE_HEX == [OFFICIAL[i] for i in range(10)]


grids = st.integers(1, 30).flatmap(
    lambda h: st.integers(1, 30).flatmap(
        lambda w: st.lists(st.lists(st.integers(0, 9), min_size=w, max_size=w), min_size=h, max_size=h)
    )
)


@settings(max_examples=60, deadline=None)
@given(grids, st.sampled_from([4, 9, 16]))
def test_every_cell_centre_has_its_exact_colour(g, cell):
    g = np.array(g, dtype=np.uint8)
    img = rgb(viz.grid_png(g, cell=cell))
    h, w = g.shape
    assert img.shape == (h * cell + 1, w * cell + 1, 3)
    ys = np.arange(h) * cell + 1 + (cell - 1) // 2
    xs = np.arange(w) * cell + 1 + (cell - 1) // 2
    centres = img[np.ix_(ys, xs)]
    expected = viz.PALETTE_RGB[g]
    assert (centres == expected).all()
    # grid lines are grey, not a cell colour
    assert hex_of(img[0, 0]) == "#555555"


def test_cell_numbers_draw_distinct_glyphs():
    g = np.arange(10, dtype=np.uint8).reshape(2, 5)
    plain, numbered = rgb(viz.grid_png(g, cell=20)), rgb(viz.grid_png(g, cell=20, numbers=True))
    assert plain.shape == numbered.shape and (plain != numbered).any()
    # each digit's glyph differs from the others
    crops = [
        numbered[1 + (i // 5) * 20 : (i // 5 + 1) * 20, 1 + (i % 5) * 20 : (i % 5 + 1) * 20] != viz.PALETTE_RGB[i]
        for i in range(10)
    ]
    masks = {c.any(axis=2).tobytes() for c in crops}
    assert len(masks) == 10


def test_pair_and_thumbnail_are_pngs_with_both_grids():
    a = np.full((3, 3), 2, np.uint8)
    b = np.full((2, 4), 4, np.uint8)
    img = rgb(viz.pair_png(a, b, cell=10))
    colours = {hex_of(p) for p in img.reshape(-1, 3)}
    assert {"#FF4136", "#FFDC00"} <= colours
    assert img.shape[1] > (3 + 4) * 10
    t = Task("t", (Pair(a, b),), (Pair(a, None),))
    thumb = rgb(viz.task_thumbnail_png(t, size=60))
    assert thumb.shape[0] <= 61 and {"#FF4136", "#FFDC00"} <= {hex_of(p) for p in thumb.reshape(-1, 3)}


@pytest.mark.parametrize("shape,expected", [((3, 3), 24), ((30, 30), 8), ((1, 30), 8), ((10, 2), 24)])
def test_cell_size_keeps_images_readable(shape, expected):
    assert viz.cell_size_for(shape) == expected
