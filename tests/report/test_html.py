"""html: what the page says about files it left out (the browser test covers rendering)."""

import json
import re
from html import unescape
from urllib.parse import unquote

import pytest

from ringcert.batch import ResultStore, run_batch
from ringcert.errors import RingcertError
from ringcert.report.html import STYLE, build_report
from tests.batch.fake_task import fake_analysis, fake_analysis_with_png, fake_record, tasks

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


def table_rows(page: str, table_id: str) -> list[list[str]]:
    """The body rows of one table of the page, as plain-text cells."""
    found = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody></table>', page, re.S)
    assert found is not None, table_id
    return [[unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", found.group(1))]


def test_the_page_shows_the_two_sided_and_paired_tables(tmp_path):
    """Model ``pgd`` certifies 0.5 per image, above the frontier 0.4 of ``none`` on all six
    (image, target) pairs: its advantage holds on both sides."""
    store = ResultStore(tmp_path / "results")
    for task in tasks(3, models=("none", "pgd"), algorithm="naive"):
        rings = 4  # the rings (and so the weights) depend on the image only, as in real runs
        certified, upper = (0.5, None) if task.model == "pgd" else (0.25, 0.4)
        per_ring = None if upper is None else upper / rings
        record = {**fake_record(task), "rings": rings, "ring_sizes": [100, 200, 300, 400],
                  "weights": [1.0] * rings, "maximality": ["unproven"] * rings,
                  "epsilon": [certified / rings] * rings, "size": certified, "target_rings": [rings - 1],
                  "frontier": {"ray_scale": 1.5, "rings": [per_ring] * rings},
                  "frontier_size": rings * 1.0 if upper is None else upper}
        store.write(task, record)
    index = build_report(tmp_path / "results", tmp_path / "report")
    page = index.read_text()
    assert len(table_rows(page, "summary")) == 2
    sides = table_rows(page, "two-sided")
    assert len(sides) == 2 * 5  # two models x five measures
    assert sides[0][:7] == ["none", "naive", "-", "-", "fake", "size w · eps", "6"]
    assert sides[0][9:12] == ["6", "0.4 [0.4, 0.4]", "0.4"]  # the frontier side of none
    assert [row[5] for row in sides[:5]] == ["size w · eps", "eps per pixel", "eps on ring 0",
                                             "eps on target rings", "ray scale"]
    paired = table_rows(page, "paired")
    assert [row[4:] for row in paired] == [
        ["none", "pgd", "6", "0 of 6", "1", "6", "0 of 6", "1", "0 of 6", "1", "no conclusion",
         "0 of 6", "1"],  # none's frontier 0.4 against pgd's 4.0 (no ring broken)
        ["pgd", "none", "6", "6 of 6", "0.0156", "6", "6 of 6", "0.0156", "6 of 6", "0.0156",
         "pgd > none on both sides", "6 of 6", "0.0156"]]
    assert '<p id="shrink">No guided search analysed' in page
    for name in ("summary", "two_sided", "paired"):
        for suffix in (".md", ".csv"):
            assert f'href="figures/{name}{suffix}"' in page
            assert (index.parent / "figures" / f"{name}{suffix}").is_file()
    assert (index.parent / "figures" / "shrink.md").is_file()  # written, headers only, not linked
    assert 'href="figures/shrink.md"' not in page


def test_without_two_models_on_one_image_the_paired_section_says_so(tmp_path):
    run_batch(tasks(1, sleep=0.0, algorithm="naive"), fake_analysis, tmp_path, progress=False)
    page = build_report(tmp_path, tmp_path / "report").read_text()
    assert '<p id="paired">No two models analysed the same image' in page
    sides = table_rows(page, "two-sided")  # fake records have no frontier: n/a
    assert len(sides) == 5 and all(row[10] == "n/a" for row in sides)


def test_the_page_shows_the_cutting_weight_rules_when_two_were_run(tmp_path):
    for shrink in ("fixed", "sensitivity"):
        run_batch(tasks(3, sleep=0.0, algorithm="guided", shrink=shrink), fake_analysis,
                  tmp_path / shrink, progress=False)
    page = build_report(tmp_path, tmp_path / "report").read_text()
    [row] = table_rows(page, "shrink")
    assert row[:4] == ["none", "fixed", "sensitivity", "6"]  # 3 images x 2 targets
    assert sum(int(cell) for cell in row[4:7]) == 6
    assert 'href="figures/shrink.md"' in page and 'alt="fixed_vs_sensitivity_by_ring"' in page


def test_the_page_shows_the_relation_matrices_of_three_object_images(tmp_path):
    from tests.report.test_relations import record

    for index in range(2):
        for selection, size in (("p0-t1", 1.0), ("p0-t2", 3.0), ("p1-t0", 2.0), ("p0-t1+2", 0.5)):
            raw = record(selection, size + index, index=index, frontier_size=10.0).raw
            path = tmp_path / "results" / f"{index}-{selection}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(raw))
    index = build_report(tmp_path / "results", tmp_path / "report")
    page = index.read_text()
    assert "<h2>Relations between objects</h2>" in page and "2 images of three or more objects" in page
    certified = table_rows(page, "relations-0")  # none3's mean certified size
    assert certified[0] == ["0", "-", "1.500", "3.500", "1.000"]  # (1+2)/2, (3+4)/2, rest (0.5+1.5)/2
    assert certified[1] == ["1", "2.500", "-", "-", "-"]
    assert 'href="figures/relations.md"' in page and 'href="figures/relations.json"' in page
    assert (index.parent / "figures" / "relations.json").is_file()
    assert 'alt="relations-none3-mean"' in page
