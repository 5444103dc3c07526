"""relations: per-image matrices from analysis records, their means, the neighbour test, and a
relation matrix of a tiny model that matches analyses run one by one."""

import json
import math

import numpy as np
import pytest
import torch

from ringcert.report.records import AnalysisRecord, show
from ringcert.report.relations import (
    mean_matrices,
    neighbour_test,
    relation_matrices,
    relations_markdown,
    write_relations,
)
from ringcert.selection import Selection
from tests.report.test_records import analysis_json, frontier


def record(selection: str, size: float, *, model: str = "none3", index: int = 0,
           frontier_size: float | None = None, ring0: float = 0.1, objects: int = 3) -> AnalysisRecord:
    raw = analysis_json(frontier(0.5, 0.5, None))
    raw.update(model=model, image_index=index, target=selection, size=size, objects=objects,
               frontier_size=frontier_size)
    raw["epsilon"] = [ring0, *raw["epsilon"][1:]]
    raw["target_rings"] = [1, 2]
    return AnalysisRecord.from_json(raw)


def test_each_pair_lands_in_its_cell_and_one_against_all_in_rest() -> None:
    records = [record("p0-t1", 1.0, frontier_size=2.0, ring0=0.01), record("p0-t2", 3.0),
               record("p2-t1", 5.0), record("p1-t0+2", 7.0), record("p0-t1+2", 0.5),
               record("p0-t1", 9.0, index=1)]
    first, second = relation_matrices(records)
    assert (first.image_index, second.image_index, first.objects) == (0, 1, 3)
    certified = first.values["certified"]
    assert certified[0, 1] == 1.0 and certified[0, 2] == 3.0 and certified[2, 1] == 5.0
    assert first.values["frontier"][0, 1] == 2.0 and first.values["ring0"][0, 1] == 0.01
    # eps (0.01, 0.125, 1.0) and frontier u (0.5, 0.5, unbroken = 1) over target rings 1 and 2
    assert first.values["target_rings"][0, 1] == pytest.approx((0.125 + 1.0) / 2)
    assert first.values["frontier_target_rings"][0, 1] == pytest.approx((0.5 + 1.0) / 2)
    assert math.isnan(certified[1, 0]) and all(math.isnan(certified[i, i]) for i in range(3))
    assert first.rest["certified"][1] == 7.0 and first.rest["certified"][0] == 0.5
    assert math.isnan(first.rest["certified"][2])
    assert second.values["certified"][0, 1] == 9.0
    restored = json.loads(json.dumps(first.to_json()))
    assert restored["certified"][0][1] == 1.0 and restored["certified"][1][0] is None
    assert restored["rest_certified"] == [0.5, 7.0, None]


def test_skipped_pairs_stay_empty_and_two_object_sides_map_to_indices() -> None:
    skip = AnalysisRecord.from_json({"model": "none3", "image_index": 0, "target": "p1-t2",
                                     "skipped": "target 4 is not in the model's top-3"})
    [matrix] = relation_matrices([record("p0-t1", 1.0), skip])
    assert math.isnan(matrix.values["certified"][1, 2])
    [pair] = relation_matrices([record("right", 1.0, objects=2), record("left", 2.0, objects=2)])
    assert pair.objects == 2 and pair.values["certified"][0, 1] == 1.0
    assert pair.values["certified"][1, 0] == 2.0


def test_a_multi_target_record_keeps_its_classes() -> None:
    raw = analysis_json()
    raw.update(target="p0-t1+2", target_class=[3, 5])
    parsed = AnalysisRecord.from_json(raw)
    assert parsed.target == Selection(perturbed=(0,), targets=(1, 2)) and parsed.target_class == (3, 5)
    assert show(parsed.target) == "p0-t1+2" and show(parsed.target_class) == "3+5"


def test_the_mean_is_over_the_images_that_have_the_pair() -> None:
    records = [record("p0-t1", 1.0, index=0), record("p0-t1", 3.0, index=1), record("p0-t2", 4.0, index=1)]
    [mean] = mean_matrices(relation_matrices(records))
    assert mean.image_index is None and mean.values["certified"][0, 1] == 2.0
    assert mean.values["certified"][0, 2] == 4.0 and math.isnan(mean.values["certified"][1, 0])


def _images(near: list[float], far: list[float]) -> list[AnalysisRecord]:
    """Per image: object 0 perturbed against its neighbour (1) and the far digit (2)."""
    return [one for index, (a, b) in enumerate(zip(near, far, strict=True))
            for one in (record("p0-t1", a, index=index), record("p0-t2", b, index=index))]


def test_the_neighbour_test_reads_the_sign_and_size_of_far_minus_near() -> None:
    rng = np.random.default_rng(0)
    near = list(rng.uniform(1, 2, 12))
    hurt = neighbour_test(relation_matrices(_images(near, [value + 0.5 for value in near])))
    row = next(row for row in hurt if row.measure == "certified")
    assert (row.images, row.wins, row.losses, row.ties) == (12, 12, 0, 0)
    assert row.mean == pytest.approx(0.5) and row.wilcoxon_p < 0.01 and row.sign_p < 0.01
    spared = neighbour_test(relation_matrices(_images(near, [value - 0.5 for value in near])))
    row = next(row for row in spared if row.measure == "certified")
    assert row.wins == 0 and row.losses == 12 and row.wilcoxon_p > 0.9 and row.sign_p > 0.9


def test_the_neighbour_test_needs_three_objects() -> None:
    assert neighbour_test(relation_matrices([record("right", 1.0, objects=2)])) == []


def test_written_files_hold_the_matrices(tmp_path) -> None:
    matrices = relation_matrices(_images([1.0, 2.0], [1.5, 2.5]))
    paths = write_relations(matrices, tmp_path, images=False)
    assert [path.name for path in paths] == ["relations.json", "relations.md", "relations-none3-mean.png"]
    stored = json.loads(paths[0].read_text())
    assert [entry["certified"][0][1] for entry in stored] == [1.0, 2.0]
    assert paths[1].read_text() == relations_markdown(matrices)
    assert "| 0 | - | 1.500 | 2.000 | - |" in paths[1].read_text()  # mean of two images; no rest run


def test_the_matrix_of_a_tiny_model_matches_analyses_run_one_by_one(tmp_path) -> None:
    """``analyze --relations`` (through the batch) gives the sizes ``analyze`` gives each
    selection alone (a query budget and no time limit: both runs are deterministic)."""
    from ringcert.analysis import analyze
    from ringcert.batch import ResultStore, read_record, run_batch
    from ringcert.batch.analyses import analysis_tasks, run_task
    from ringcert.data.images import ImageSet
    from ringcert.models.modelfile import save_model
    from ringcert.options import AnalysisOptions
    from ringcert.samples import image_problem
    from ringcert.selection import relation_selections

    torch.manual_seed(3)
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 4, stride=4), torch.nn.ReLU(), torch.nn.Flatten(),
                                  torch.nn.Linear(2 * 2 * 6, 10)).eval()
    # three objects side by side on a small 8 x 24 canvas (few rings: a fast search)
    pixels = torch.rand(1, 1, 8, 24, generator=torch.Generator().manual_seed(0)).numpy()
    masks = np.zeros((1, 3, 8, 24), dtype=bool)
    for j in range(3):
        masks[0, j, 2:6, 8 * j + 2 : 8 * j + 6] = True
    with torch.no_grad():
        top = network(torch.from_numpy(pixels)).topk(3).indices[0].numpy()
    images = ImageSet(images=pixels, masks=masks, labels=top[None].astype(np.int64))
    data = tmp_path / "three.npz"
    np.savez(data, images=images.images, masks=images.masks, labels=images.labels)
    model = tmp_path / "tiny.safetensors"
    save_model(network, model, {"name": "tiny", "objects": 3})
    options = AnalysisOptions(max_queries=4, time_limit=None, frontier=False)
    selections = relation_selections(3)
    tasks = analysis_tasks(models=[str(model)], indices=[0], sides=selections, options=options,
                           data=str(data), objects=3)
    run_batch(tasks, run_task, tmp_path / "out", progress=False)
    store = ResultStore(tmp_path / "out")
    [matrix] = relation_matrices([AnalysisRecord.from_json(read_record(store.json_path(task)))
                                  for task in tasks])
    # one by one: both pairs of object 0 and object 1 against all others (the batch ran all 9)
    for selection in [selections[0], selections[1], selections[-2]]:
        alone = analyze(image_problem(network, images, target=selection), options)
        [i] = selection.perturbed
        if len(selection.targets) == 1:
            assert matrix.values["certified"][i, selection.targets[0]] == pytest.approx(alone.size)
        else:
            assert matrix.rest["certified"][i] == pytest.approx(alone.size)
    assert not np.isnan(matrix.values["certified"][~np.eye(3, dtype=bool)]).any()
