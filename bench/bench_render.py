"""Grid rendering to PNG over all ARC-AGI-1 evaluation grids, on one core.

Prints `name: value` lines. Baseline, measured in the same run: a straightforward
renderer (RGB image, one PIL rectangle per cell, default PNG settings).
Target (issue 2): >= 2,000 grids/s.

    .venv/bin/python bench/bench_render.py
"""

import io
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from PIL import Image, ImageDraw  # noqa: E402

from ttft.core.data import load_dataset
from ttft.views import grids as viz

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def baseline_png(g, cell):
    h, w = g.shape
    im = Image.new("RGB", (w * cell + 1, h * cell + 1), (85, 85, 85))
    d = ImageDraw.Draw(im)
    for i in range(h):
        for j in range(w):
            d.rectangle(
                [j * cell + 1, i * cell + 1, (j + 1) * cell - 1, (i + 1) * cell - 1],
                fill=tuple(int(v) for v in viz.PALETTE_RGB[g[i, j]]),
            )
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def rate(fn, grids, repeat=3):
    best = 0.0
    for _ in range(repeat):
        t = time.perf_counter()
        for g in grids:
            fn(g)
        best = max(best, len(grids) / (time.perf_counter() - t))
    return best


def main():
    grids = [g for t in load_dataset("arc-agi-1/evaluation") for g in t.grids]
    ours = rate(lambda g: viz.grid_png(g), grids)
    numbered = rate(lambda g: viz.grid_png(g, numbers=True), grids, repeat=1)
    base = rate(lambda g: baseline_png(g, viz.cell_size_for(g.shape)), grids, repeat=1)
    print(f"grids: {len(grids)}")
    print(f"grids_per_second: {ours:.0f}")
    print(f"grids_per_second_with_numbers: {numbered:.0f}")
    print(f"baseline_grids_per_second: {base:.0f}")
    print(f"speedup_vs_baseline: {ours / base:.1f}")
    print("target_grids_per_second: 2000")
    print(f"meets_target: {ours >= 2000}")


if __name__ == "__main__":
    main()
