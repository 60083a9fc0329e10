"""report.html in a real browser: every image loads and nothing runs off the page, at a wide and a
narrow window. Needs Playwright's Chromium (`pip install playwright && python -m playwright install
chromium`); skipped cleanly without it."""

import pytest
from conftest import tiny_config

from dsae_pyro.cli import main

sync_api = pytest.importorskip("playwright.sync_api")

BROKEN_IMAGES = """Array.from(document.images)
    .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))"""
OVERFLOWING = """Array.from(document.querySelectorAll('body *'))
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .map(e => e.tagName + (e.getAttribute('src') ? ' ' + e.getAttribute('src') : ''))"""


@pytest.fixture
def chromium():
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch()
        except Exception as e:  # noqa: BLE001 - no browser binary: Playwright names the fix
            pytest.skip(f"no Chromium for Playwright ({str(e).splitlines()[0]})")
        yield browser
        browser.close()


def test_report_renders_in_chromium(tmp_path, tiny_npz, chromium):
    cfg = tiny_config()
    cfg.data.path = str(tiny_npz)
    (tmp_path / "tiny.toml").write_text(cfg.to_toml())
    run, judge = tmp_path / "run", tmp_path / "judge.pt"
    data = ["--data", "npz", "--data-path", str(tiny_npz)]
    assert main(["train", "--preset", str(tmp_path / "tiny.toml"), "--epochs", "1", "--out",
                 str(run), "--quiet"]) == 0
    assert main(["judge", "train", *data, "--epochs", "1", "--out", str(judge), "--quiet"]) == 0
    assert main(["evaluate", str(run), "--judge", str(judge), "--draws", "2", "--iw-samples", "2",
                 "--iw-clips", "4"]) == 0
    for width in (1400, 700):
        page = chromium.new_page(viewport={"width": width, "height": 900})
        page.goto((run / "report.html").as_uri())
        page.wait_for_load_state("load")
        assert page.evaluate("document.images.length") >= 6
        assert page.evaluate(BROKEN_IMAGES) == []
        assert page.evaluate(OVERFLOWING) == [], f"elements wider than a {width}px window"
        page.close()
