"""Real-browser tests: Playwright drives Debian's Chromium against `streamlit run app.py`."""

import pytest

pytestmark = pytest.mark.browser

TIMEOUT = 60_000


def assert_no_exception(page):
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']"
    ).first.inner_text()
    assert not page.js_errors, page.js_errors


def test_cold_deep_link_to_a_task(page, app_url):
    page.goto(f"{app_url}/Tasks?dataset=arc-agi-1/evaluation&task=009d5c81", timeout=TIMEOUT)
    page.get_by_text("Task 009d5c81").first.wait_for(timeout=TIMEOUT)
    page.get_by_text("Train 5 input").first.wait_for(timeout=TIMEOUT)
    imgs = page.locator("[data-testid='stImage'] img")
    imgs.first.wait_for(timeout=TIMEOUT)
    # 5 train pairs + 1 test pair, input and output each
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 12", timeout=TIMEOUT)
    first = imgs.first
    first.wait_for(state="visible", timeout=TIMEOUT)
    size = first.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
    assert size[0] and size[1] > 100 and size[2] > 100, size
    assert "5 train, 1 test" in page.content()
    assert_no_exception(page)


def test_gallery_opens_a_task_and_next_moves_on(page, app_url):
    page.goto(f"{app_url}/Tasks?dataset=arc-agi-1/evaluation", timeout=TIMEOUT)
    page.get_by_role("button", name="00576224").wait_for(timeout=TIMEOUT)
    # the gallery's thumbnails stream in after the buttons: wait for them rather than count once
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 24", timeout=TIMEOUT)
    page.get_by_role("button", name="00576224").click()
    page.get_by_text("Task 00576224").first.wait_for(timeout=TIMEOUT)
    assert "task=00576224" in page.url
    page.get_by_role("button", name="Next ▶").click()
    page.get_by_text("Task 009d5c81").first.wait_for(timeout=TIMEOUT)
    assert "task=009d5c81" in page.url
    assert_no_exception(page)


def test_home_lists_datasets_and_links(page, app_url):
    page.goto(app_url, timeout=TIMEOUT)
    page.get_by_text("arc-agi-2/evaluation").first.wait_for(timeout=TIMEOUT)
    assert page.get_by_role("link", name="Tasks").count() >= 1
    assert_no_exception(page)


def test_upload_a_task_file_and_see_its_pairs(page, app_url, tmp_path):
    import json

    task = {"train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}], "test": [{"input": [[5, 6]]}]}
    f = tmp_path / "my_task.json"
    f.write_text(json.dumps(task))
    page.goto(f"{app_url}/Tasks", timeout=TIMEOUT)
    page.get_by_text("Dataset").first.wait_for(timeout=TIMEOUT)
    page.locator("[data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="Upload a file…").click()
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(f))
    page.get_by_role("button", name="my_task", exact=True).wait_for(timeout=TIMEOUT)
    page.get_by_role("button", name="my_task", exact=True).click()
    page.get_by_text("Task my_task").first.wait_for(timeout=TIMEOUT)
    page.get_by_text("Test 1 output").first.wait_for(timeout=TIMEOUT)
    assert "hidden" in page.content()
    assert_no_exception(page)
