"""``normlab compare``: train one model under several normalizations over several seeds; report evidence.

The lists and defaults in ``--help`` and ``--list`` are generated from the experiments' registries
(``METHODS``, ``MODELS``, ``PRESETS``, ``DEFAULTS``, ``OPTIMIZERS``): nothing here names a model, a
method or a preset.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

EPILOG = """examples:
  normlab compare                                   a quick comparison on the bundled digits data
  normlab compare --list                            methods, models and presets
  normlab compare --data breast-cancer --model logreg --methods none,standardize,robust --seeds 10
  normlab compare --preset mnist-cnn --data mnist:data/mnist --limit 5000 --out runs/mnist-cnn
  normlab compare --preset rows-lstm --data mnist:data/mnist --limit 3000 --epochs 3
  normlab compare --data mnist:data/mnist --model my_net.py:build --methods scale,standardize+batchnorm-all
  normlab compare --data digits --init-seeds 3 --order-seeds 3    separate init and batch-order randomness
running the same command again after an interruption trains only the missing runs.
the run folder holds report.html, curves.png, final.png, summary.csv, epochs.csv, config.json;
`normlab report RUNDIR` rebuilds them."""

_NOT_FOR_COMPARE = ("--split", "--batch-size", "--seed")


class _DatasetGroup:
    """Passes the shared dataset options through, minus those that mean something else here."""

    def __init__(self, group: Any, dests: list[str]) -> None:
        self._group = group
        self._dests = dests

    def add_argument(self, *names: str, **kwargs: Any) -> Any:
        if any(n in _NOT_FOR_COMPARE for n in names):
            return None
        action = self._group.add_argument(*names, **kwargs)
        self._dests.append(action.dest)
        return action


class _DatasetParser:
    """Hands ``add_dataset_arguments`` a filtered group and records the options it adds."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._parser = parser
        self.dests: list[str] = []

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _DatasetGroup:
        return _DatasetGroup(self._parser.add_argument_group(*args, **kwargs), self.dests)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} is not positive; expected 1 or more")
    return v


def _number(v: float) -> str:
    """``0.001`` and ``1e-7`` the way people write them (``:g`` would give ``1e-07``)."""
    return f"{v:g}".replace("e-0", "e-")


def _optimizer_help() -> str:
    from normlab.experiments.presets import DEFAULTS
    from normlab.experiments.train import OPTIMIZERS

    name = DEFAULTS["optimizer"]
    shown = [f"{k} {_number(v)}" for k, v in OPTIMIZERS[name].items() if k in ("lr", "epsilon")]
    return f"with Keras' defaults (default {name}: {', '.join(shown)})"


def _loss_help() -> str:
    from normlab.experiments.losses import LOSSES

    first = next(iter(LOSSES))
    return "; ".join(f"{k}: {v.description}" for k, v in LOSSES.items()) + (
        f" (default: {first} for the torch engine, keras-probs for keras). A compiled keras.Model of yours "
        "keeps its own loss (refused with --loss); an uncompiled one must match it: softmax last for keras-probs"
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    from normlab.data.cli import add_dataset_arguments

    p = sub.add_parser(
        "compare",
        help="does a normalization help? train under several methods × seeds, report with statistics",
        description="Train a model under several input normalizations, each over several seeds (weight init "
        "and batch order paired across methods), and write an HTML report with learning curves (mean ± "
        "std), final accuracies, bootstrap confidence intervals and paired tests against a baseline. "
        "Statistics are fitted on the training split only. The summary table goes to stdout, progress to "
        "stderr.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_what_to_compare(p)
    _add_seeds(p.add_argument_group("seeds"))
    _add_training(p.add_argument_group("training"))
    _add_output(p.add_argument_group("output"))
    dataset_parser = _DatasetParser(p)
    add_dataset_arguments(dataset_parser)
    p.set_defaults(run=run, dataset_options=tuple(dataset_parser.dests))


def _add_what_to_compare(p: argparse.ArgumentParser) -> None:
    from normlab.experiments.models import MODELS
    from normlab.experiments.presets import DEFAULTS, PRESETS

    p.add_argument(
        "--data",
        metavar="SPEC",
        default=None,
        help=f"dataset spec: {DEFAULTS['data']} (default), breast-cancer, wine, mnist:DIR, fashion-mnist:DIR, "
        "cifar10:DIR, images:DIR, csv:FILE, npz:FILE, ...",
    )
    p.add_argument(
        "--preset", default=None, help=f"start from a preset: {', '.join(PRESETS)}"
    )
    p.add_argument(
        "--methods",
        default=None,
        metavar="LIST",
        help="comma-separated methods, e.g. none,scale,standardize,batchnorm-all or "
        "standardize+batchnorm-all (see --list)",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help=f"{', '.join(MODELS)}, a comma-separated list, or path/to/file.py:build",
    )
    p.add_argument(
        "--baseline", default=None, metavar="METHOD", help="method to test against (default: first)"
    )


def _add_seeds(seeds: Any) -> None:
    from normlab.experiments.presets import DEFAULTS

    seeds.add_argument(
        "--seeds",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"paired replicates per method (default {DEFAULTS['seeds']}): replicate k uses init and "
        "order seed k",
    )
    seeds.add_argument(
        "--init-seeds",
        type=_positive_int,
        default=None,
        metavar="I",
        help="weight-initialization seeds; with --order-seeds: every combination",
    )
    seeds.add_argument(
        "--order-seeds",
        type=_positive_int,
        default=None,
        metavar="J",
        help="batch-order seeds; with --init-seeds: every combination",
    )
    seeds.add_argument("--seed", type=int, default=0, help="the first seed (default %(default)s)")


def _add_training(train: Any) -> None:
    from normlab.experiments.engines import ENGINES
    from normlab.experiments.losses import LOSSES
    from normlab.experiments.presets import DEFAULTS
    from normlab.experiments.train import OPTIMIZERS

    train.add_argument(
        "--optimizer",
        choices=list(OPTIMIZERS),
        default=None,
        help=_optimizer_help(),
    )
    train.add_argument(
        "--lr", type=float, default=None, help="learning rate (default: the optimizer's)"
    )
    train.add_argument("--loss", choices=list(LOSSES), default=None, help=_loss_help())
    train.add_argument(
        "--engine", choices=list(ENGINES), default=None,
        help="who trains the built-in models: " + "; ".join(f"{k}: {v.description}" for k, v in ENGINES.items())
        + f" (default {DEFAULTS['engine']}); a FILE.py:build returning a keras.Model always trains with keras",
    )  # fmt: skip
    train.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"default {DEFAULTS['batch_size']}",
    )
    train.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"default {DEFAULTS['epochs']}",
    )
    train.add_argument("--device", default="auto", help="auto (a GPU when present), cpu or cuda")
    train.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        metavar="N",
        help="parallel worker processes (default: one per core); 1 trains in this process",
    )
    train.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="PyTorch threads per worker (default: cores // workers)",
    )
    train.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="run the sweep on a Dask cluster: a scheduler address (tcp://host:8786), or 'local'",
    )


def _add_output(out: Any) -> None:
    out.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="run folder (default runs/<data>-<model>-<hash>); the same command resumes it",
    )
    out.add_argument(
        "--json", action="store_true", help="print the summary rows as JSON instead of a table"
    )
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    out.add_argument(
        "--list", action="store_true", help="list methods, models and presets, then exit"
    )


def listing() -> str:
    from normlab.experiments import METHODS, MODELS, PRESETS
    from normlab.experiments.engines import ENGINES
    from normlab.experiments.losses import LOSSES
    from normlab.experiments.presets import design

    lines = ["methods (join with '+' to combine, e.g. standardize+batchnorm-all):"]
    lines += [f"  {k:<16} {v}" for k, v in METHODS.items()]
    lines += ["models:"]
    lines += [f"  {k:<16} {v}" for k, v in MODELS.items()]
    lines += ["  FILE.py:build    your build(input_shape, n_classes) -> torch.nn.Module or keras.Model"]
    lines += ["engines (--engine):"]
    lines += [f"  {k:<16} {v.description}" for k, v in ENGINES.items()]
    lines += ["losses (--loss):"]
    lines += [f"  {k:<16} {v.description}" for k, v in LOSSES.items()]
    lines += ["presets:"]
    for k, v in PRESETS.items():
        lines.append(f"  {k:<16} {v['help']}")
        lines.append(
            f"  {'':<16} methods {v['methods']}; model {v['model']}; engine {v.get('engine', 'torch')}; "
            f"{design(v)}"
        )
    return "\n".join(lines)


def _json_safe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
        for r in rows
    ]


def result_json(result: Any) -> str:
    """A ComparisonResult as ``--json`` prints it: run folder, report path, summary rows (NaN as null)."""
    return json.dumps({"rundir": str(result.rundir), "report": str(result.report_path),
                       "summary": _json_safe(result.summary)}, indent=2)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(listing())
        return 0
    from normlab.experiments import compare

    data_options = {
        k: getattr(args, k) for k in args.dataset_options
        if k not in ("limit", "validation_split") and getattr(args, k, None) is not None
    }  # fmt: skip
    if "resize" in data_options:
        data_options["resize"] = tuple(data_options["resize"])
    try:
        result = compare(
            args.data, methods=args.methods, model=args.model, preset=args.preset, seeds=args.seeds,
            init_seeds=args.init_seeds, order_seeds=args.order_seeds, seed=args.seed,
            optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size, epochs=args.epochs,
            validation_split=args.validation_split, limit=args.limit, baseline=args.baseline,
            device=args.device, loss=args.loss, engine=args.engine, workers=args.workers, threads=args.threads,
            scheduler=args.scheduler, out=args.out,
            data_options=data_options,
            progress=False if args.quiet else "log",  # a bar on a terminal, else a line every 30 s
        )  # fmt: skip
    except KeyboardInterrupt:
        print(
            "Stopped. Finished runs are saved; run the same command again to resume.",
            file=sys.stderr,
        )
        raise
    if result.n_skipped:
        print(f"resumed: {result.n_skipped} of {result.n_planned} runs were already finished, "
              f"{len(result.ran)} trained now", file=sys.stderr)  # fmt: skip
    if args.json:
        print(result_json(result))
    else:
        print(result.table())
        if result.n_diverged:
            print(
                f"{result.n_diverged} run(s) diverged (loss NaN/inf or exploding); see the report."
            )
        if result.n_stalled:
            print(f"{result.n_stalled} run(s) stalled (softmax saturated, zero gradient); see the report.")
        print(f"report: {result.report_path}")
    return 0
