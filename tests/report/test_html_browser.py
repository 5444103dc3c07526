"""The HTML report: every link resolves, and a real headless Chromium renders it cleanly."""

import functools
import json
import os
import shutil
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin
from urllib.request import urlopen

import pytest

from ringcert.batch import run_batch
from ringcert.errors import RingcertError
from ringcert.report.html import build_report
from tests.batch.fake_task import fake_analysis, fake_analysis_with_png, tasks

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report over guided fixed/sensitivity runs (with heatmaps) and a naive run (none)."""
    root = tmp_path_factory.mktemp("results")
    for name, settings in {"fixed": {"shrink": "fixed"},
                           "sensitivity": {"shrink": "sensitivity"}}.items():
        run_batch(tasks(3, models=("none", "pgd"), sleep=0.0, algorithm="guided", **settings),
                  fake_analysis_with_png, root / name, progress=False)
    run_batch(tasks(2, models=("none",), sleep=0.0, algorithm="naive"), fake_analysis,
              root / "naive", progress=False)
    return root, build_report(root, root / "report")  # inside the results: must not recurse


class Links(HTMLParser):
    """Images, links, and the rows of the summary table (the page has more tables)."""

    def __init__(self):
        super().__init__()
        self.images, self.anchors, self.rows = [], [], 0
        self.table: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.anchors.append(attrs["href"])
        elif tag == "table":
            self.table = attrs.get("id")
        elif tag == "tr" and self.table == "summary":
            self.rows += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = None


def test_every_link_and_image_is_in_the_report_folder(report):
    root, index = report
    links = Links()
    links.feed(index.read_text())
    assert links.rows == 1 + 5  # header + (2 models x 2 shrinks) + naive on one model
    json_links = [href for href in links.anchors if href.endswith(".json")]
    assert len(set(json_links)) == 2 * 6 * 2 + 4  # every analysis, once
    for href in links.images + links.anchors:
        target = index.parent / unquote(href)
        assert target.is_file() and target.resolve().is_relative_to(index.parent.resolve())
    gallery = [src for src in links.images if src.startswith("analyses/")]
    assert len(gallery) == 2 * 6 * 2  # the naive run has no heatmaps: cards without image
    for href in set(json_links):
        record = json.loads((index.parent / unquote(href)).read_text())
        original = root / Path(unquote(href)).relative_to("analyses")
        assert record == json.loads(original.read_text())
    assert "no heatmap" in index.read_text()


def test_missing_results_are_an_error(tmp_path):
    with pytest.raises(RingcertError):
        build_report(tmp_path / "absent", tmp_path / "out")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output clean
        pass


@pytest.fixture
def served(report):
    _, index = report
    handler = functools.partial(QuietHandler, directory=str(index.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


# CI sets RINGCERT_REQUIRE_BROWSER=1 so that a missing browser fails instead of skipping.
@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("RINGCERT_REQUIRE_BROWSER"),
                    reason="/usr/bin/chromium is not installed "
                    "(apt-get install -y chromium chromium-driver)")
def test_report_renders_in_headless_chromium(served, tmp_path):
    assert CHROMIUM.exists(), "/usr/bin/chromium is required here (RINGCERT_REQUIRE_BROWSER)"
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    assert CHROMEDRIVER.exists() and shutil.which(str(CHROMIUM))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(urljoin(served, "index.html"))
        assert driver.title == "ringcert report"
        images = driver.find_elements("tag name", "img")
        assert len(images) == 6 + 2 * 6 * 2  # plots + gallery heatmaps
        for image in images:  # gallery images load lazily: bring each into view first
            driver.execute_script("arguments[0].scrollIntoView();", image)
            WebDriverWait(driver, 10).until(lambda _, image=image: driver.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0;", image),
                message=f"image {image.get_attribute('src')} did not load")
        # at the default width the thumbnails stay wide and their captions readable text
        cards = driver.find_elements("css selector", ".gallery .card")
        assert len(cards) == 2 * 6 * 2 + 4 and all(card.size["width"] >= 220 for card in cards)
        for caption in driver.find_elements("css selector", ".card figcaption"):
            font = driver.execute_script(
                "return parseFloat(getComputedStyle(arguments[0]).fontSize);", caption)
            assert font >= 13 and "model " in caption.text and "rings refuted" in caption.text
        rows = driver.find_elements("css selector", "#summary tbody tr")
        assert len(rows) == 5
        link = driver.find_element("css selector", ".card a[href$='.json']")
        href = link.get_attribute("href")
        with urlopen(href, timeout=10) as response:
            assert json.loads(response.read())["task_key"]
        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        driver.quit()
