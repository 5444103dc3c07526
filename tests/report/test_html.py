"""html: what the page says about files it left out (the browser test covers rendering)."""

import json
import re
from html import unescape
from urllib.parse import unquote

import pytest

from ringcert.batch import ResultStore, run_batch
from ringcert.errors import RingcertError
from ringcert.report.html import STYLE, build_report
from tests.batch.fake_task import fake_analysis, fake_analysis_with_png, tasks

SKIP = {"model": "none", "image_index": 5, "target": "left", "skipped": "target 2 is not in the top-2"}


def cards(page: str) -> int:
    return page.count('<figure class="card">')


def captions(page: str) -> list[tuple[str, str]]:
    """(JSON link, caption as plain text) of every gallery card."""
    found = re.findall(r'<figure class="card">.*?<figcaption>(.*?)</figcaption></figure>', page, re.S)
    return [(re.findall(r'<a href="([^"]+\.json)">', caption)[0],
             " ".join(unescape(re.sub(r"<[^>]+>", " ", caption)).split())) for caption in found]


def skipped_items(page: str) -> list[str]:
    found = re.search(r'<ul id="skipped">(.*?)</ul>', page, re.S)
    return [] if found is None else [unescape(re.sub(r"<[^>]+>", "", item))
                                     for item in re.findall(r"<li>(.*?)</li>", found.group(1))]


def test_the_page_lists_every_skipped_file_with_why(tmp_path):
    root = tmp_path / "results"
    run_batch(tasks(2, sleep=0.0, algorithm="naive"), fake_analysis, root, progress=False)
    junk = root / "none" / "notes.json"
    junk.write_text('{"model": "none", "image_index": 0}')
    skip = ResultStore(root).write(tasks(6)[-2], SKIP)
    page = build_report(root, tmp_path / "report").read_text()
    assert cards(page) == 4
    assert "4 analyses from" in page and "(2 files or records skipped, listed at the end)" in page
    assert skipped_items(page) == [
        f"{junk}: not an analysis record: missing key 'target'",
        f"{skip}: analysis none #5 left skipped: target 2 is not in the top-2"]


def test_a_clean_folder_has_no_skipped_section(tmp_path):
    run_batch(tasks(1, sleep=0.0, algorithm="naive"), fake_analysis, tmp_path, progress=False)
    page = build_report(tmp_path, tmp_path / "report").read_text()
    assert cards(page) == 2 and '<ul id="skipped">' not in page and "<h2>Skipped" not in page
    assert "skipped, listed" not in page


def test_a_rebuilt_report_inside_its_results_reads_only_the_originals(tmp_path):
    """``a-report`` sorts before the run's folder: its copies must not shadow the originals."""
    run_batch(tasks(2, sleep=0.0, algorithm="naive"), fake_analysis, tmp_path, progress=False)
    first = build_report(tmp_path, tmp_path / "a-report").read_text()
    again = build_report(tmp_path, tmp_path / "a-report").read_text()
    assert cards(first) == cards(again) == 4 and skipped_items(again) == []
    assert 'href="analyses/none/0-left.json"' in again


def test_nothing_readable_is_an_error_naming_the_files(tmp_path):
    (tmp_path / "a.json").write_text("not json")
    ResultStore(tmp_path).write(tasks(1)[0], SKIP)
    with pytest.raises(RingcertError, match="no analysis results") as caught:
        build_report(tmp_path, tmp_path / "report")
    message = str(caught.value)
    assert "looked at 2 *.json files" in message and f"{tmp_path / 'a.json'}: unreadable JSON" in message
    assert "target 2 is not in the top-2" in message and not (tmp_path / "report").exists()


def test_every_caption_says_in_text_which_analysis_and_its_result(tmp_path):
    """The caption, not the heatmap's small baked-in title, names the analysis."""
    run_batch(tasks(2, models=("none", "pgd"), sleep=0.0, algorithm="guided", shrink="sensitivity"),
              fake_analysis_with_png, tmp_path / "results", progress=False)
    index = build_report(tmp_path / "results", tmp_path / "report")
    found = captions(index.read_text())
    assert len(found) == cards(index.read_text()) == 8
    for link, text in found:
        record = json.loads((index.parent / unquote(link)).read_text())
        refuted = record["maximality"].count("refuted")
        for part in (f"model {record['model']}", f"image {record['image_index']}",
                     f"target {record['target']}", "guided / sensitivity",
                     f"size {record['size']:.4g}", f"{refuted} of {record['rings']} rings refuted"):
            assert part in text, (part, text)


def test_the_gallery_grid_keeps_thumbnails_wide_and_captions_readable():
    minimum = re.search(r"\.gallery \{[^}]*minmax\((\d+)px", STYLE)
    assert minimum is not None and 220 <= int(minimum.group(1)) <= 260
    size = re.search(r"\.card figcaption \{[^}]*font-size: ([\d.]+)rem", STYLE)
    assert size is not None and float(size.group(1)) >= 0.875
