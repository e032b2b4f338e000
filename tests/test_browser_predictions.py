"""Real-browser tests of the Predictions page over a temporary runs folder: a cold deep link to a task view, a row
click then '← All tasks', and the run panel's link to the New-prediction form."""

import pytest
from _predfake import TASKS, fake_run, make_prediction, tiny_model_dir
from conftest import start_streamlit, stop

pytestmark = pytest.mark.browser

TIMEOUT = 60_000
RUN = "20261125-ttft-demo"


@pytest.fixture(scope="module")
def pred_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser_pred_runs")
    model = tiny_model_dir(tmp_path_factory.mktemp("browser_pred_tiny"))
    run = fake_run(root / RUN, model)
    with pytest.MonkeyPatch.context() as mp:
        make_prediction(mp, run / "predictions" / "ttft-4v", run=str(run))
    proc, url = start_streamlit(env_extra={"TTFT_RUNS_DIR": str(root)})
    yield url, run
    stop(proc)


@pytest.fixture(scope="module")
def pred_url(pred_site):
    return pred_site[0]


def test_cold_deep_link_to_a_task_view(page, pred_url):
    tid = TASKS[1]  # right in 2 of 4 views: attempt 1 right, attempt 2 wrong (with a diff image)
    page.goto(f"{pred_url}/Predictions?run={RUN}&task={tid}", timeout=TIMEOUT)
    page.get_by_text(f"Task {tid}").first.wait_for(timeout=TIMEOUT)
    for label in ("Test input", "Truth", "Attempt 1", "Attempt 2"):
        page.get_by_text(label, exact=True).first.wait_for(state="visible", timeout=TIMEOUT)
    # input, truth, attempt 1, attempt 2 and attempt 2's diff
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 5", timeout=TIMEOUT)
    imgs = page.locator("[data-testid='stImage'] img")
    for i in range(5):
        img = imgs.nth(i)
        img.wait_for(state="visible", timeout=TIMEOUT)
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 50", arg=img.element_handle(), timeout=TIMEOUT
        )
    page.get_by_text("wrong or missing cells crossed").first.wait_for(state="visible", timeout=TIMEOUT)
    assert "task=" + tid in page.url and "run=" + RUN in page.url
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']"
    ).first.inner_text()
    assert not page.js_errors, page.js_errors


def _rows_clickable(page):
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.wait_for(state="visible", timeout=TIMEOUT)
    return grid


def test_back_to_the_table_after_clicking_a_row(page, pred_url):
    """Open a task by clicking its row, then '← All tasks': the table stays (no stale selection reopening it)."""
    page.goto(f"{pred_url}/Predictions?run={RUN}", timeout=TIMEOUT)
    grid = _rows_clickable(page)
    page.wait_for_timeout(1000)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 35 * 1 + 17)  # the row marker of the second row
    page.get_by_role("heading", name=f"Task {TASKS[1]}").wait_for(timeout=TIMEOUT)
    page.get_by_text("Train pairs").first.wait_for(state="visible", timeout=TIMEOUT)
    page.get_by_role("button", name="← All tasks").click()
    page.get_by_role("heading", name="Predictions", exact=True).wait_for(timeout=TIMEOUT)
    page.wait_for_timeout(3000)  # a stale selection would have reopened the task by now
    assert page.get_by_role("heading", name=f"Task {TASKS[1]}").count() == 0
    assert "task=" not in page.url
    _rows_clickable(page)
    assert page.locator("[data-testid='stException']").count() == 0
    assert not page.js_errors, page.js_errors


def test_run_panel_link_opens_the_new_prediction_form(page, pred_site):
    pred_url, run_dir = pred_site
    page.goto(f"{pred_url}/Predictions?run={run_dir}&new=1", timeout=TIMEOUT)
    page.get_by_role("heading", name="New prediction").wait_for(timeout=TIMEOUT)
    page.get_by_text(f"--run {run_dir}").first.wait_for(state="visible", timeout=TIMEOUT)
    page.get_by_role("button", name="Launch prediction").wait_for(state="visible", timeout=TIMEOUT)
    assert page.locator("[data-testid='stException']").count() == 0
    assert not page.js_errors, page.js_errors
