import pickle

import pytest

from ringcert.batch import AnalysisTask
from ringcert.errors import RingcertError
from ringcert.vocabulary import Side


def make(**changes):
    fields = dict(model="none", image_index=3, target="right",
                  settings={"algorithm": "guided", "shrink": "fixed", "delta": 0.01})
    fields.update(changes)
    return AnalysisTask(**fields)


def test_key_is_stable_and_ignores_dict_order():
    a = make()
    b = make(settings={"delta": 0.01, "shrink": "fixed", "algorithm": "guided"})
    assert a.key == b.key and a == b and hash(a) == hash(b)
    assert len(a.key) == 64 and a.target is Side.RIGHT


@pytest.mark.parametrize("change", [
    {"model": "l0"}, {"image_index": 4}, {"target": "left"},
    {"settings": {"algorithm": "guided", "shrink": "sensitivity", "delta": 0.01}},
    {"settings": {"algorithm": "guided", "shrink": "fixed", "delta": 0.02}},
    {"settings": {"algorithm": "guided", "shrink": "fixed", "delta": 0.01, "max_queries": 5}},
])
def test_any_changed_field_changes_the_key(change):
    assert make(**change).key != make().key


def test_settings_are_copied_and_pickle_round_trips():
    settings = {"nested": {"a": [1, 2]}}
    task = make(settings=settings)
    settings["nested"]["a"].append(3)
    assert task.settings == {"nested": {"a": [1, 2]}}
    assert pickle.loads(pickle.dumps(task)).key == task.key


def test_model_label_of_a_path():
    assert make(model="/tmp/models/my-net.safetensors").model_label == "my-net"
    assert make(model="pgd").label == "pgd/3-right"


@pytest.mark.parametrize("bad", [
    {"target": "up"}, {"image_index": -1}, {"image_index": True}, {"model": ""},
    {"settings": {"x": object()}}, {"settings": {"x": float("nan")}},
])
def test_bad_tasks_are_one_line_errors(bad):
    with pytest.raises(RingcertError):
        make(**bad)
