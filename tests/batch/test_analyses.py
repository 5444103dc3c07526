"""The analysis batch's tasks: every input file enters a task's identity by content."""

from __future__ import annotations

import shutil

from ringcert.batch.analyses import analysis_tasks, file_digest
from ringcert.models.modelfile import shipped_path
from ringcert.options import AnalysisOptions
from ringcert.vocabulary import Side


def _keys(models, options):
    return [task.key for task in analysis_tasks(models=models, indices=[0, 1], sides=[Side.RIGHT],
                                                options=options)]


def test_editing_a_weights_file_under_the_same_name_changes_the_keys(tmp_path) -> None:
    weights = tmp_path / "w.json"
    weights.write_text("[1, 1, 1]")
    options = AnalysisOptions(weights=str(weights))
    before = _keys(["none"], options)
    assert _keys(["none"], options) == before  # same content, same work
    weights.write_text("[1, 2, 1]")
    after = _keys(["none"], options)
    assert set(before).isdisjoint(after)


def test_a_model_file_is_identified_by_content_not_name_or_time(tmp_path) -> None:
    model = tmp_path / "net.safetensors"
    shutil.copyfile(shipped_path("none"), model)
    first = _keys([str(model)], AnalysisOptions())
    shutil.copyfile(shipped_path("none"), tmp_path / "copy.safetensors")
    (tmp_path / "copy.safetensors").replace(model)  # same bytes, new file and mtime
    assert _keys([str(model)], AnalysisOptions()) == first
    shutil.copyfile(shipped_path("pgd"), model)
    assert set(_keys([str(model)], AnalysisOptions())).isdisjoint(first)
    assert analysis_tasks(models=[str(model)], indices=[0], sides=[Side.LEFT],
                          options=AnalysisOptions())[0].settings["model_sha256"] == file_digest(model)


def test_options_change_the_keys_and_shipped_names_carry_no_hash() -> None:
    base = _keys(["none"], AnalysisOptions())
    assert set(base).isdisjoint(_keys(["none"], AnalysisOptions(time_limit=30.0)))
    task = analysis_tasks(models=["none"], indices=[0], sides=[Side.RIGHT], options=AnalysisOptions())[0]
    assert "model_sha256" not in task.settings
    # the task names the k it verifies: the default (None) becomes the number of objects
    assert AnalysisOptions.from_settings(task.settings) == AnalysisOptions(k=2)
    assert "objects" not in task.settings  # two-object keys are what they were


def test_tasks_on_three_object_images_record_objects_and_k() -> None:
    from ringcert.selection import Selection

    selection = Selection(perturbed=(0,), targets=(1, 2))
    [task] = analysis_tasks(models=["none"], indices=[4], sides=[selection],
                            options=AnalysisOptions(), objects=3)
    assert task.settings["objects"] == 3 and task.settings["k"] == 3
    assert task.target == selection and task.label == "none/4-p0-t1+2"
    [explicit] = analysis_tasks(models=["none"], indices=[4], sides=[selection],
                                options=AnalysisOptions(k=2), objects=3)
    assert explicit.settings["k"] == 2 and explicit.key != task.key
