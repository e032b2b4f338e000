"""Cold load of the Tasks page (ARC-AGI-1 evaluation, 400 tasks) in headless Chromium.

Each sample is a new browser context (no cache, no cookies) opening
`/Tasks?dataset=arc-agi-1/evaluation` and waiting until the first gallery page's
24 thumbnails have loaded. Baseline, measured in the same run: the same wait
for a bare Streamlit page showing one image (the framework's floor).
Target (issue 2): median < 2 s.

    .venv/bin/python bench/bench_tasks_page.py [--samples 9]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CHROMIUM, CHROMIUM_ARGS, free_port, start_streamlit, stop  # noqa: E402

GALLERY_READY = """n => { const imgs = [...document.querySelectorAll("[data-testid='stImage'] img")];
  return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }"""


def cold_load(browser, url, n_images):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_function(GALLERY_READY, arg=n_images, timeout=60_000)
    dt = time.perf_counter() - t
    ctx.close()
    return dt


def bare_server():
    import subprocess
    import urllib.request

    d = Path(tempfile.mkdtemp())
    (d / "bare.py").write_text(
        "import streamlit as st\nimport numpy as np\nfrom PIL import Image\n"
        "st.image(Image.fromarray(np.zeros((8, 8, 3), np.uint8)), output_format='PNG')\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "bare.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=d,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=9)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    app, url = start_streamlit()
    bare, bare_url = bare_server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tasks_url = f"{url}/Tasks?dataset=arc-agi-1/evaluation"
            first = cold_load(browser, tasks_url, 24)  # first visit after server start (dataset not cached yet)
            ours = [cold_load(browser, tasks_url, 24) for _ in range(args.samples)]
            cold_load(browser, bare_url, 1)
            base = [cold_load(browser, bare_url, 1) for _ in range(args.samples)]
            browser.close()
    finally:
        stop(app)
        stop(bare)
    med, bmed = statistics.median(ours), statistics.median(base)
    print(f"samples: {args.samples}")
    print(f"first_load_after_server_start_s: {first:.2f}")
    print(f"tasks_page_cold_load_median_s: {med:.2f}")
    print(f"tasks_page_cold_load_max_s: {max(ours):.2f}")
    print(f"bare_streamlit_page_median_s: {bmed:.2f}")
    print(f"ratio_vs_bare_streamlit: {med / bmed:.2f}")
    print("target_median_s: 2.0")
    print(f"meets_target: {med < 2.0}")


if __name__ == "__main__":
    main()
