import numpy as np
import pytest
import torch

from ringcert.errors import RingcertError
from ringcert.models.architecture import input_shape, relu_count, seed_classifier
from ringcert.models.modelfile import (
    SHIPPED,
    SHIPPED_THREE,
    load_model,
    model_objects,
    save_model,
    shipped_path,
)


def test_round_trip(tmp_path):
    network = seed_classifier().eval()
    path = tmp_path / "m.safetensors"
    save_model(network, path, {"name": "mine", "defense": "none"})
    loaded = load_model(path)
    x = torch.rand(4, 1, 64, 64)
    assert torch.equal(loaded.network(x), network(x))
    assert loaded.name == "mine" and loaded.metadata["defense"] == "none"


def test_seed_classifier_size():
    assert relu_count(seed_classifier()) == 12288


@pytest.mark.parametrize("content", [b"", b"not a model at all" * 10])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(RingcertError, match="corrupt"):
        load_model(path)


def test_missing_and_mismatched(tmp_path):
    with pytest.raises(RingcertError, match="unknown model"):
        load_model(tmp_path / "nope.safetensors")
    network = seed_classifier()
    path = tmp_path / "m.safetensors"
    save_model(network, path, {"name": "x"})
    # swap in a spec whose shapes disagree with the stored weights
    import json

    from safetensors.torch import load_file, save_file
    tensors = load_file(str(path))
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["ringcert"])
    meta["spec"][0]["out"] = 8
    save_file(tensors, str(path), metadata={"ringcert": json.dumps(meta)})
    with pytest.raises(RingcertError, match="does not match"):
        load_model(path)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_load_with_metadata(name):
    if not shipped_path(name).exists():
        pytest.fail(f"shipped model {name} missing")
    loaded = load_model(name)
    meta = loaded.metadata
    assert meta["defense"] == name
    assert meta["relu_count"] == 12288
    assert 0.8 < meta["test_top2_accuracy"] <= 1.0
    assert set(meta["pgd_robust_top2_accuracy"]) == {"0.01", "0.03", "0.05", "0.1"}
    assert set(meta["crown_certified_top2_accuracy"]) == {"0.01", "0.03", "0.05", "0.1"}
    assert np.isfinite(loaded.network(torch.zeros(1, 1, 64, 64)).detach().numpy()).all()


@pytest.mark.parametrize("name", SHIPPED_THREE)
def test_three_digit_models_load_with_their_canvas(name):
    loaded = load_model(name)
    meta = loaded.metadata
    assert model_objects(loaded) == 3 and meta["defense"] == name.removesuffix("3")
    assert meta["relu_count"] == relu_count(loaded.network, input_shape(3)) == 18432
    assert 0.8 < meta["test_top3_accuracy"] <= 1.0
    assert set(meta["pgd_robust_top3_accuracy"]) == {"0.01", "0.03", "0.05", "0.1"}
    assert loaded.network(torch.zeros(1, *input_shape(3))).shape == (1, 10)
