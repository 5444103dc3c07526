"""One static HTML page for a results folder: summary tables, plots and a heatmap gallery.

The page and everything it shows live in one output folder, so it can be opened from
disk, served by any static web server or zipped and sent:

- ``index.html``: the comparison table (``ringcert compare``'s rows), its plots, and a
  gallery of every analysis (its heatmap, size, maximality per ring), each linked to
  its JSON record;
- ``figures/``: the tables (``summary.md``, ``summary.csv``) and plots of
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

from ringcert.batch.store import load_records, write_atomic
from ringcert.report.compare import HEADERS, Comparison, Record, Variant, compare_loaded

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.5rem 0; }
figure.plot img { max-width: 100%; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr));
           gap: 0.75rem; }
.card { border: 1px solid #ddd; border-radius: 4px; padding: 0.4rem; font-size: 0.8rem; }
.card img { width: 100%; height: auto; display: block; }
.card .missing { padding: 2rem 0; text-align: center; color: #888; background: #f4f4f4; }
.refuted { color: #0a6; } .unproven { color: #c60; } .saturated { color: #36c; }
"""

TEXT_COLUMNS = ("model", "algorithm", "shrink", "gradient", "verifier")


def _link(path: Path, base: Path) -> str:
    return quote(path.relative_to(base).as_posix())


def _number(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4g}"
    return escape(str(value))


def _table(comparison: Comparison) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for label in HEADERS.values())
    body = []
    for row in comparison.rows:
        cells = [f"<td>{escape(str(getattr(row, name)))}</td>" if name in TEXT_COLUMNS
                 else f'<td class="num">{_number(getattr(row, name))}</td>' for name in HEADERS]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<table id="summary"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


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


def _card(record: Record, json_link: str, png_link: str | None) -> str:
    variant = Variant.of(record)
    title = (f"{record['model']} · image {record.get('image_index')} · target "
             f"{record.get('target')} · {variant.label}")
    if png_link:
        picture = (f'<a href="{json_link}"><img src="{png_link}" loading="lazy" '
                   f'alt="heatmap: {escape(title)}"></a>')
    else:
        picture = '<div class="missing">no heatmap</div>'
    statuses = record.get("maximality", [])
    counts = ", ".join(f'<span class="{escape(s)}">{statuses.count(s)} {escape(s)}</span>'
                       for s in dict.fromkeys(statuses))
    queries = record.get("queries", {})
    total = queries.get("total", "?") if isinstance(queries, dict) else queries
    return (f'<div class="card">{picture}<div>{escape(title)}</div>'
            f"<div>size {_number(float(record['size']))} over {len(record['epsilon'])} rings; "
            f"{counts}</div><div>{escape(str(total))} queries, "
            f"{_number(float(record.get('time_s', float('nan'))))} s; "
            f'<a href="{json_link}">JSON</a></div></div>')


def _gallery(loaded: Sequence[tuple[Path, Record]], roots: Sequence[Path], out: Path) -> str:
    analyses = out / "analyses"
    sections: dict[str, list[str]] = {}
    order = sorted(loaded, key=lambda item: (
        str(item[1]["model"]), Variant.of(item[1]).label, item[1].get("image_index") or 0,
        str(item[1].get("target"))))
    for path, record in order:
        json_copy = _copy(path, _destination(path, roots, analyses))
        png = path.with_suffix(".png")
        png_link = _link(_copy(png, json_copy.with_suffix(".png")), out) if png.is_file() else None
        sections.setdefault(str(record["model"]), []).append(
            _card(record, _link(json_copy, out), png_link))
    return "\n".join(
        f'<h3 id="gallery-{escape(model)}">model {escape(model)} ({len(cards)} analyses)</h3>'
        f'<div class="gallery">{"".join(cards)}</div>' for model, cards in sections.items())


def build_report(results: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 out: str | os.PathLike[str]) -> Path:
    """Write the report for every analysis under ``results`` to ``out``; the page's path."""
    from ringcert import __version__

    roots = [Path(results)] if isinstance(results, str | os.PathLike) else \
        [Path(folder) for folder in results]
    out = Path(out)
    # a report written inside its results folder must not read its own copies back
    loaded = [(path, record) for path, record in load_records(roots)
              if not path.resolve().is_relative_to(out.resolve())]
    comparison = compare_loaded(loaded, out / "figures")
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
<p>{len(loaded)} analyses from {folders}; ringcert {escape(__version__)}.
Size is <code>w · eps</code>; a tight ring is one whose growth by delta was refuted by a
checked counterexample (saturated rings, eps = 1, are left out).</p>
<h2>Summary</h2>
{_table(comparison)}
<p>Tables: <a href="{_link(comparison.csv, out)}">CSV</a>,
<a href="{_link(comparison.markdown, out)}">Markdown</a>.</p>
<h2>Plots</h2>
{plots}
<h2>Analyses</h2>
{_gallery(loaded, roots, out)}
</body>
</html>
"""
    index = out / "index.html"
    write_atomic(index, page.encode())
    return index
