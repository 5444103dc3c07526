"""What the ray extension (``--extend``) buys: certified size and ray scale, before and after.

Reads a results folder of ``ringcert analyze --extend`` and one of the same analyses without
it (same settings otherwise, a query budget, so the searches' vectors are the same; this is
checked), and prints per analysis and per model the scale the envelope proved, the
certified size and the attack's ray scale without and with the extension, and the
extension's seconds.

    python benchmarks/extension.py EXTENDED_DIR PLAIN_DIR
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from common import table
from ringcert.report.records import image_key, read_analyses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extended", help="results of ringcert analyze --extend")
    parser.add_argument("plain", help="results of the same analyses without --extend")
    args = parser.parse_args()
    plain = {(record.model, image_key(record)): record
             for _, record in read_analyses([args.plain]).require_analyses()}
    rows, per_model = [], defaultdict(list)
    for _, record in read_analyses([args.extended]).require_analyses():
        base = plain.get((record.model, image_key(record)))
        extension = record.raw.get("extension")
        if base is None or extension is None:
            continue
        if list(base.epsilon) != list(extension["base_epsilon"]):
            raise SystemExit(f"{record.model} {image_key(record)}: the searches' vectors differ")
        rungs = " ".join(f"{rung['scale']:g}{'+' if rung['status'] == 'robust' else '-'}"
                         for rung in extension["rungs"])
        row = [record.model, f"{record.image_index}-{record.raw['target']}", extension["scale"],
               base.size, record.size, base.ray_scale, record.ray_scale, extension["time_s"], rungs]
        rows.append(row)
        per_model[record.model].append(row)
    print(table(["model", "analysis", "scale proved", "size", "size extended", "ray scale",
                 "ray scale extended", "extension s", "rungs (+ proved)"], rows))
    summary = []
    for model, group in sorted(per_model.items()):
        def median(column: int, group=group) -> float:
            return statistics.median(row[column] for row in group if row[column] is not None)
        scales = [row[2] for row in group]
        summary.append([model, len(group), f"{min(scales):g}-{max(scales):g}", median(2), median(3),
                        median(4), median(5), median(6), median(7), max(row[7] for row in group)])
    print()
    print(table(["model", "analyses", "scales proved", "median scale", "median size",
                 "median size extended", "median ray scale", "median ray scale extended",
                 "median extension s", "max extension s"], summary))


if __name__ == "__main__":
    main()
