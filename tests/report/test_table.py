"""table: the summary ``ringcert analyze`` prints, one line per analysis or skip record."""

from ringcert.report.records import AnalysisRecord
from ringcert.report.table import refuted_rings, summary_table

HEADER = ("model     image target  t  p rings     size frontier     gap    ray refuted queries  "
          "time s  note\n" + "-" * 97)


def analysis(maximality, **changes) -> AnalysisRecord:
    rings = len(maximality)
    raw = {"model": "pgd", "image_index": 3, "target": "right", "target_class": 7,
           "perturbed_class": 1, "k": 2, "rings": rings, "ring_sizes": [50] * rings,
           "weights": [1.0] * rings, "epsilon": [0.25] * rings, "size": 0.25 * rings,
           "maximality": maximality, "queries": {"crown": 50, "attack": 7, "total": 57},
           "time_s": 12.34, "algorithm": {"name": "guided", "shrink": "fixed"},
           "verifier": "cascade", **changes}
    return AnalysisRecord.from_json(raw)


def test_the_refuted_count_reads_the_maximality_statuses():
    record = analysis(["refuted", "unproven", "refuted", "saturated", "expandable"])
    assert refuted_rings(record) == 2
    assert refuted_rings(analysis(["unproven", "saturated", "unchecked"])) == 0
    assert summary_table([record]) == HEADER + (
        "\npgd           3 right   7  1     5    1.250        -       -      -       2      57    12.3")


def test_a_skipped_row_says_why():
    skipped = AnalysisRecord.from_json({"model": "none", "image_index": 0, "target": "left",
                                        "skipped": "target 3 is not in the top-2"})
    other = analysis(["refuted"], image_index=11, perturbed_class=None, time_s=0.04)
    assert summary_table([skipped, other]).splitlines()[2:] == [
        "none          0 left    skipped: target 3 is not in the top-2",
        "pgd          11 right   7 None     1    0.250        -       -      -       1      57     0.0"]


def test_frontier_gap_and_ray_columns():
    record = analysis(["unproven", "refuted"], frontier_size=1.75,
                      frontier={"ray_scale": 1.457, "rings": [0.9, 0.85]})
    assert record.gap == 1.25
    assert summary_table([record]).splitlines()[2] == (
        "pgd           3 right   7  1     2    0.500    1.750   1.250   1.46       1      57    12.3")


def test_no_records_leave_the_header():
    assert summary_table([]) == HEADER


def test_an_extended_analysis_says_its_scale_in_the_note():
    record = analysis(["unchecked", "refuted"],
                      extension={"base_epsilon": [0.2, 0.2], "scale": 1.25, "rungs": [], "time_s": 3.0})
    assert record.extension_scale == 1.25
    assert summary_table([record]).splitlines()[2].endswith("12.3  extended x1.25")
    assert analysis(["refuted"], extension=None).extension_scale is None
