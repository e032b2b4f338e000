"""Real-browser test of the Augmentations page: a cold deep link in Debian's Chromium."""

import pytest

pytestmark = pytest.mark.browser

TIMEOUT = 60_000


def test_cold_deep_link_to_a_task(page, app_url):
    page.goto(f"{app_url}/Augmentations?dataset=arc-agi-1/evaluation&task=009d5c81", timeout=TIMEOUT)
    page.get_by_text("Augmentations · 009d5c81").first.wait_for(timeout=TIMEOUT)
    page.get_by_text("augmented output · 14×14").first.wait_for(timeout=TIMEOUT)
    # 6 pairs x (original + augmented) x (input + output) in the first tab
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stImage'] img\").length >= 24", timeout=TIMEOUT)
    first = page.locator("[data-testid='stImage'] img").first
    first.wait_for(state="visible", timeout=TIMEOUT)
    page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=first.element_handle(), timeout=TIMEOUT)
    badge = page.get_by_text("round-trip ✓").first
    badge.wait_for(state="visible", timeout=TIMEOUT)
    assert page.get_by_text("round-trip ✗").count() == 0
    assert "task=009d5c81" in page.url
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']"
    ).first.inner_text()
    assert not page.js_errors, page.js_errors
