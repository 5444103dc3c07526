"""One static HTML page for a results folder: summary tables, plots and a heatmap gallery.

The page and everything it shows live in one output folder, so it can be opened from
disk, served by any static web server or zipped and sent:

- ``index.html``: the comparison tables (``ringcert compare``'s summary, certified against
  frontier, and the paired comparison of models), its plots, a
  gallery of every analysis (its heatmap as a thumbnail, captioned in text with the
  model, image, target, variant, size and refuted rings), each linked to its JSON record,
  and the list of files and skip records left out, with why;
- ``figures/``: the tables (``summary``, ``two_sided``, ``paired``, each ``.md`` and ``.csv``)
  and plots of
  :mod:`ringcert.report.compare`;
- ``analyses/``: copies of the JSON records and heatmap PNGs, laid out as in the
  results folder (``<model>/<index>-<target>.json``).

No scripts, no external resources. Reads results only; never verifies.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ringcert.batch.store import write_atomic
from ringcert.report.compare import (
    PAIRED_LEVEL,
    Comparison,
    compare_loaded,
    paired_shown,
    summary_shown,
    two_sided_shown,
)
from ringcert.report.records import AnalysisRecord, Results, Variant, read_analyses, show
from ringcert.report.relations import relation_tables
from ringcert.report.shown import Shown
from ringcert.report.shrink_rules import shrink_shown
from ringcert.report.statistics import CONFIDENCE
from ringcert.vocabulary import MaximalityStatus

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ci { white-space: nowrap; }
.scroll { overflow-x: auto; }
figure { margin: 0.5rem 0; }
figure.plot img { max-width: 100%; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr));
           gap: 0.75rem; }
.card { margin: 0; border: 1px solid #ddd; border-radius: 4px; padding: 0.4rem; }
.card img { width: 100%; height: auto; display: block; }
.card .missing { padding: 2rem 0; text-align: center; color: #888; background: #f4f4f4; }
.card figcaption { font-size: 0.9rem; line-height: 1.35; margin-top: 0.35rem;
                   overflow-wrap: anywhere; }
.card figcaption .which { font-size: 1rem; font-weight: 600; }
.card figcaption .variant { color: #444; }
.refuted { color: #0a6; } .unproven { color: #c60; } .saturated { color: #36c; }
#skipped li { font-size: 0.85rem; }
"""

def _link(path: Path, base: Path) -> str:
    return quote(path.relative_to(base).as_posix())


def _number(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4g}"
    return escape(str(value))


def _interval(cell: str) -> str:
    """A number cell; in ``mean [low, high]`` the line may break only before the interval."""
    if cell.startswith("["):
        return f'<span class="ci">{escape(cell)}</span>'
    mean, bracket, interval = cell.partition(" [")
    return escape(mean) + (f' <span class="ci">[{escape(interval)}</span>' if bracket else "")


def _table(shown: Shown, table_id: str) -> str:
    """A table of ``compare`` (its cells already text), numbers right-aligned."""
    head = "".join(f"<th>{escape(header)}</th>" for header in shown.headers)
    body = ["<tr>" + "".join(f'<td class="num">{_interval(cell)}</td>' if numeric
                             else f"<td>{escape(cell)}</td>"
                             for cell, numeric in zip(row, shown.numeric, strict=True)) + "</tr>"
            for row in shown.rows]
    return (f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _downloads(markdown: Path, table: Path, out: Path) -> str:
    return (f'<p>Table: <a href="{_link(table, out)}">CSV</a>, '
            f'<a href="{_link(markdown, out)}">Markdown</a>.</p>')


def _tables(comparison: Comparison, out: Path) -> str:
    """The tables of ``compare``, each with what it says and links to its files."""
    paired = (_table(paired_shown(comparison.paired), "paired") if comparison.paired
              else '<p id="paired">No two models analysed the same image and target with the same '
                   "variant.</p>")
    return f"""<h2>Summary</h2>
{_table(summary_shown(comparison.rows), "summary")}
{_downloads(comparison.markdown, comparison.csv, out)}
<h2>Certified and frontier</h2>
<p>Both sides of each answer, per model and variant: the certified vector <code>eps*</code>
and the attack frontier <code>u</code> (the smallest epsilon per ring at which a checked attack
broke the model, 1 where none did), as mean with {CONFIDENCE:.0%} t-interval and median; the last
column is frontier minus certified per analysis (for the size: the gap). Eps per pixel is the
mean over the image's pixels (rings weighted by their area); ring 0 is the perturbed object; eps
on target rings is the mean over the rings that cross the target object. The ray scale is the
smallest <code>s</code> at which the attack broke <code>s · eps*</code> (over the analyses whose
ray it broke). n/a: no analysis has that side (runs without frontier, or records that do not
list the target's rings).</p>
{_table(two_sided_shown(comparison.two_sided), "two-sided")}
{_downloads(comparison.two_sided_markdown, comparison.two_sided_csv, out)}
<h2>Paired comparison of models</h2>
<p>Over the images and targets both models analysed with the same variant: how often model A's
certified size is above model B's certified size, and above B's frontier size, with one-sided
sign-test p-values (ties left out). A's certified size above B's frontier size holds whatever
verifier would certify B: every robust box of B that contains B's certified box stays below the
frontier on each ring, so its size is at most B's frontier size. The conclusion is stated where
a p-value is below {PAIRED_LEVEL:.0%}.</p>
{paired}
{_downloads(comparison.paired_markdown, comparison.paired_csv, out)}
{_rules(comparison, out)}
{_relations(comparison, out)}"""


def _rules(comparison: Comparison, out: Path) -> str:
    """The cutting-weight rules against each other (``shrink.md``), where two were run."""
    if not comparison.shrink:
        return ('<h2>Cutting-weight rules</h2>\n<p id="shrink">No guided search analysed the same '
                "image and target with two cutting-weight rules.</p>")
    return f"""<h2>Cutting-weight rules</h2>
<p>Per model, the guided search with one cutting-weight rule against another over the images and
targets both analysed: how often the second rule's certified size is larger, the mean paired
difference with its {CONFIDENCE:.0%} t-interval, the median size ratio, and two-sided sign and
Wilcoxon signed-rank tests.</p>
{_table(shrink_shown(comparison.shrink), "shrink")}
{_downloads(comparison.shrink_markdown, comparison.shrink_csv, out)}"""


def _relations(comparison: Comparison, out: Path) -> str:
    """The relation matrices' means and the neighbour test, for images of three or more
    objects (``relations.md``, ``relations.json``)."""
    if comparison.relations is None:
        return ""
    tables = "\n".join(f"<p>{escape(caption)}</p>\n{_table(shown, f'relations-{index}')}"
                       for index, (caption, shown) in enumerate(relation_tables(comparison.matrices)))
    markdown_link = _link(comparison.relations, out)
    json_link = _link(comparison.relations.with_name("relations.json"), out)
    return f"""<h2>Relations between objects</h2>
<p>{len(comparison.matrices)} images of three or more objects. Entry (i, j) is the analysis that
perturbs object i (the rings grow from it) and keeps object j in the top-k, averaged over the
images; the last column keeps every other object at once. The mean matrices are drawn among the
plots.</p>
{tables}
<p>Download: <a href="{markdown_link}">relations.md</a>, <a href="{json_link}">relations.json</a>
(every image's matrices)</p>"""


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def _destination(path: Path, roots: Sequence[Path], analyses: Path) -> Path:
    """Where a record's copy goes: its path inside its results folder (numbered per folder
    when there are several)."""
    for number, root in enumerate(roots):
        if path.is_relative_to(root):
            relative = path.relative_to(root)
            return analyses / (relative if len(roots) == 1 else Path(str(number)) / relative)
    return analyses / path.name


def _variant_text(variant: Variant) -> str:
    """The variant for a caption: its settings spaced so that a narrow card wraps them."""
    return f"{' / '.join(variant.label.split('/'))}, verifier {variant.verifier}"


def _caption(record: AnalysisRecord, json_link: str) -> str:
    """What a gallery card says, as text (the heatmap's own small title is not needed):
    which analysis, how it was run, the size and how many rings are refuted (tight)."""
    statuses = record.maximality
    refuted = statuses.count(MaximalityStatus.REFUTED)
    others = ", ".join(f'<span class="{escape(s.value)}">{statuses.count(s)} {escape(s.value)}</span>'
                       for s in dict.fromkeys(statuses) if s is not MaximalityStatus.REFUTED)
    return (f'<figcaption><div class="which">model {escape(record.model)} · image '
            f"{escape(show(record.image_index))} · target {escape(show(record.target))}</div>"
            f'<div class="variant">{escape(_variant_text(Variant.of(record)))}</div>'
            f"<div>size {_number(record.size)} · "
            f'<span class="refuted">{refuted} of {len(statuses)} rings refuted</span>'
            f"{f' ({others})' if others else ''}</div>"
            f"<div>{escape(str(record.queries))} queries · {_number(record.time_s)} s · "
            f'<a href="{json_link}">JSON</a></div></figcaption>')


def _card(record: AnalysisRecord, json_link: str, png_link: str | None) -> str:
    if png_link:
        alt = (f"heatmap of model {record.model}, image {show(record.image_index)}, target "
               f"{show(record.target)}, {Variant.of(record).label}")
        picture = (f'<a href="{json_link}"><img src="{png_link}" loading="lazy" '
                   f'alt="{escape(alt)}"></a>')
    else:
        picture = '<div class="missing">no heatmap</div>'
    return f'<figure class="card">{picture}{_caption(record, json_link)}</figure>'


def _gallery(loaded: Sequence[tuple[Path, AnalysisRecord]], roots: Sequence[Path], out: Path) -> str:
    analyses = out / "analyses"
    sections: dict[str, list[str]] = {}
    order = sorted(loaded, key=lambda item: (
        item[1].model, Variant.of(item[1]).label, item[1].image_index or 0, show(item[1].target)))
    for path, record in order:
        json_copy = _copy(path, _destination(path, roots, analyses))
        png = path.with_suffix(".png")
        png_link = _link(_copy(png, json_copy.with_suffix(".png")), out) if png.is_file() else None
        sections.setdefault(record.model, []).append(
            _card(record, _link(json_copy, out), png_link))
    return "\n".join(
        f'<h3 id="gallery-{escape(model)}">model {escape(model)} ({len(cards)} analyses)</h3>'
        f'<div class="gallery">{"".join(cards)}</div>' for model, cards in sections.items())


def _skipped(skipped: Sequence[tuple[Path | None, str]]) -> str:
    """The section listing what the tables leave out and why (nothing when nothing is)."""
    if not skipped:
        return ""
    items = "".join(f"<li><code>{escape(str(path))}</code>: {escape(why)}</li>" if path is not None
                    else f"<li>{escape(why)}</li>" for path, why in skipped)
    return (f"<h2>Skipped</h2>\n<p>{len(skipped)} files or records are not in the tables, "
            f'plots or gallery:</p>\n<ul id="skipped">{items}</ul>')


def _skipped_note(comparison: Comparison) -> str:
    count = len(comparison.skipped)
    return f" ({count} files or records skipped, listed at the end)" if count else ""


def build_report(results: Results, out: str | os.PathLike[str]) -> Path:
    """Write the report for every analysis under ``results`` to ``out``; the page's path.

    ``RingcertError`` for a missing folder, or when no file is an analysis (the error
    says how many files were looked at and why the first few were rejected)."""
    from ringcert import __version__

    out = Path(out)
    loaded = read_analyses(results, exclude=out)  # not the copies of a report inside results
    roots = list(loaded.roots)
    comparison = compare_loaded(loaded, out / "figures")
    # read from files, so every analysis has its path
    analyses = [(path, record) for path, record in loaded.analyses if path is not None]
    plots = "\n".join(
        f'<figure class="plot"><img src="{_link(path, out)}" alt="{escape(path.stem)}">'
        f"<figcaption>{escape(path.stem.replace('_', ' '))}</figcaption></figure>"
        for path in comparison.figures)
    folders = ", ".join(escape(str(root)) for root in roots)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ringcert report</title>
<link rel="icon" href="data:,">
<style>{STYLE}</style>
</head>
<body>
<h1>ringcert report</h1>
<p>{len(analyses)} analyses from {folders}{_skipped_note(comparison)}; ringcert {escape(__version__)}.
Size is <code>w · eps</code>; a tight ring is one whose growth by delta was refuted by a
checked counterexample (saturated rings, eps = 1, are left out).</p>
{_tables(comparison, out)}
<h2>Plots</h2>
{plots}
<h2>Analyses</h2>
{_gallery(analyses, roots, out)}
{_skipped(comparison.skipped)}
</body>
</html>
"""
    index = out / "index.html"
    write_atomic(index, page.encode())
    return index
