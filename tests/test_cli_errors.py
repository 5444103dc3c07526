"""Every bad input is one line on stderr and exit status 2, before any work starts; and a
user's own image file (``--data``) runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ringcert.cli import main
from ringcert.data.double_mnist import object_masks
from ringcert.models.modelfile import save_model


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """A file, a weights file of each bad kind, a model with the wrong input size."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "zeros.json").write_text("[0, 0, 0]")
    (tmp_path / "nan.json").write_text("[1, NaN]")
    (tmp_path / "negative.json").write_text("[1, -1]")
    (tmp_path / "three.json").write_text("[1, 1, 1]")
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    save_model(wrong, tmp_path / "mnist28.safetensors", {"name": "mnist28"})
    few = nn.Sequential(nn.Flatten(), nn.Linear(64 * 64, 3))
    save_model(few, tmp_path / "three.safetensors", {"name": "three"})
    return {name.split(".")[0] + ("_model" if name.endswith(".safetensors") else ""): str(tmp_path / name)
            for name in ("afile", "zeros.json", "nan.json", "negative.json", "three.json",
                         "mnist28.safetensors", "three.safetensors")} | {"dir": str(tmp_path)}


CASES = [  # (argv with {placeholders}, what the one line must say)
    (["analyze", "--out", "{afile}"], "--out {afile} is a file, not a folder"),
    (["analyze", "--out", "{afile}/sub"], "is a file, not a folder"),
    (["analyze", "--model", "{mnist28_model}", "--out", "{dir}/o"], "does not accept 1x64x64 images"),
    (["analyze", "--model", "{three_model}", "--out", "{dir}/o"], "has 3 outputs; the data has 10"),
    (["analyze", "--weights", "{zeros}", "--out", "{dir}/o"], "weights are all zero"),
    (["analyze", "--weights", "{nan}", "--out", "{dir}/o"], "finite and non-negative"),
    (["analyze", "--weights", "{negative}", "--out", "{dir}/o"], "finite and non-negative"),
    (["analyze", "--weights", "{three}", "--out", "{dir}/o"], "has 3 entries but image 0"),
    (["analyze", "--index", "", "--out", "{dir}/o"], "argument --index: no image index given"),
    (["analyze", "--index", "0-99999999999", "--out", "{dir}/o"], "image index 99999999999 is out of range"),
    (["analyze", "--data", "{dir}/missing.npz", "--out", "{dir}/o"], "does not exist"),
    (["compare", "{dir}", "--out", "{afile}"], "--out {afile} is a file"),
    (["report", "{dir}", "--out", "{afile}"], "--out {afile} is a file"),
    (["data", "--out", "{dir}/d"], "must end in .npz"),
    (["data", "--out", "{dir}"], "must end in .npz"),
    (["data", "--out", "{dir}/d.npz", "--start", "abc"], "argument --start: must be an integer"),
    (["data", "--out", "{dir}/d.npz", "--objects", "11"], "argument --objects: must be an integer in 2..10"),
    (["export", "--model", "none", "--onnx", "{dir}"], "must end in .onnx"),
    (["train", "--out", "{afile}/m.safetensors"], "is a file, not a folder"),
    (["train", "--out", "{dir}/m.pt"], "must end in .safetensors"),
    (["verify", "--index", "0", "--eps-uniform", "0.01", "--save-counterexample", "{dir}/c"],
     "must end in .npy"),
    (["verify", "--index", "0", "--eps-uniform", "0.01", "--export-vnnlib", "{afile}"], "is a file"),
    (["verify", "--index", "0", "--eps-uniform", "0.01", "--model", "{mnist28_model}"],
     "does not accept 1x64x64 images"),
    (["evaluate", "--model", "{mnist28_model}"], "does not accept 1x64x64 images"),
    (["evaluate", "--model", "{three_model}"], "has 3 outputs"),
    # object selections on three-digit images (issue 15)
    (["analyze", "--model", "none3", "--target", "3", "--out", "{dir}/o"],
     "--target object 3 is out of range 0..2"),
    (["analyze", "--model", "none3", "--perturb", "0,5", "--out", "{dir}/o"],
     "--perturb object 5 is out of range 0..2"),
    (["analyze", "--model", "none3", "--target", "1", "--perturb", "0,1", "--out", "{dir}/o"],
     "target object 1 is inside the perturbed set"),
    (["analyze", "--model", "none3", "--perturb", "0,1,2", "--out", "{dir}/o"], "the target set is empty"),
    (["analyze", "--model", "none3", "--perturb", "", "--out", "{dir}/o"],
     "argument --perturb: an empty object index list"),
    (["analyze", "--model", "none3", "--target", "x", "--out", "{dir}/o"],
     "argument --target: must be left, right, both or object indices"),
    (["analyze", "--model", "none3", "--target", "right", "--out", "{dir}/o"],
     "--target right needs images of two objects, these have 3"),
    (["analyze", "--model", "none3", "--relations", "--target", "1", "--out", "{dir}/o"],
     "--relations runs every pair of objects"),
    (["analyze", "--model", "none", "--model", "none3", "--out", "{dir}/o"],
     "the models were trained on different numbers of objects"),
    (["verify", "--index", "0", "--eps-uniform", "0.01", "--model", "none3", "--target", "0",
      "--perturb", "0"], "target object 0 is inside the perturbed set"),
    (["verify", "--index", "0", "--eps-uniform", "0.01", "--target", "both"], "verify answers one query"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a[:2]) + f" {i}" for i, (a, _) in
                                                          enumerate(CASES)])
def test_bad_input_is_one_line_and_exit_2(files, capsys, argv, message) -> None:
    code, _, err = _run(capsys, [part.format(**files) for part in argv])
    assert code == 2
    assert err.count("\n") == 1 and message.format(**files) in err
    assert "Traceback" not in err and not list(Path(files["dir"]).glob("o/*/*.json"))


def test_help_shows_defaults_and_explains_every_option(capsys) -> None:
    for command in ("analyze", "verify", "evaluate", "train", "data", "compare", "report", "export"):
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        if command == "analyze":
            assert "(default: 0.01)" in text and "(default: cascade)" in text
        options = [line.split()[0] for line in text.splitlines() if line.startswith("  --")]
        for line in text.split("\n  --")[1:]:  # every option has a line of explanation
            assert len(line.split()) > 1, f"{command} --{line}"
        assert options


def _own_file(path: Path, count: int = 2) -> None:
    """A file of my own: DOUBLE-MNIST-sized float images (N, 1, H, W) of two squares each."""
    from ringcert.samples import test_sample

    images = np.stack([test_sample(i).float_images()[0] for i in range(count)])
    masks = object_masks((images[:, 0] * 255).astype(np.uint8))
    labels = np.stack([test_sample(i).labels[0] for i in range(count)])
    np.savez(path, images=images, masks=masks, labels=labels)


def test_verify_and_analyze_run_on_my_own_file(tmp_path, capsys) -> None:
    data = tmp_path / "mine.npz"
    _own_file(data)
    code, out, err = _run(capsys, ["verify", "--data", str(data), "--index", "1", "--eps-uniform",
                                   "0.001", "--verifier", "crown", "--json"])
    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "robust" and record["data"] == str(data) and record["image_index"] == 1
    code, out, err = _run(capsys, ["analyze", "--data", str(data), "--index", "0-1", "--verifier", "attack",
                                   "--budget", "4", "--out", str(tmp_path / "o"), "--quiet", "--no-frontier"])
    assert code == 0, err
    stored = json.loads((tmp_path / "o" / "none" / "1-right.json").read_text())
    assert stored["data"] == str(data.resolve()) and stored["queries"]["total"] <= 4
    code, _, err = _run(capsys, ["analyze", "--data", str(data), "--index", "2", "--out",
                                 str(tmp_path / "o")])
    assert code == 2 and "image index 2 is out of range 0..1" in err


def test_problem_create_fills_the_perturbed_class() -> None:
    from ringcert.models.modelfile import load_model
    from ringcert.problem import Problem
    from ringcert.samples import test_sample

    sample = test_sample(0)
    problem = Problem.create(model=load_model("none").network, image=sample.float_images()[0],
                             target=int(sample.labels[0, 1]), mask=sample.masks[0, 0])
    assert problem.perturbed_class == int(sample.labels[0, 0])
    assert torch.is_tensor(problem.image)
