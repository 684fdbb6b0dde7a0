"""``normlab check SOURCE``: find normalization mistakes, like a linter (exit status 1 on findings)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EPILOG = """examples:
  normlab check mnist:data/mnist --normalized x_train_norm.npy
  normlab check mnist:data/mnist --stats '{"mean": [0.1307], "std": [0.3081]}'
  normlab check cifar10:data/cifar --mean 0.4914 0.4822 0.4465 --std 0.2023 0.1994 0.2010
  normlab check breast-cancer --fail-on warning
  normlab check x_train.npy --normalized x_train_std.npy --test x_test.npy --test-normalized x_test_std.npy
  normlab check mnist:data/mnist --normalizer model/normalizer.json --json
  normlab check mnist:data/mnist --normalized x_train_div255.npy --model model.keras
  normlab check images:photos --model resnet.onnx --expects imagenet
  normlab check images:photos --normalized x.npy --expects preprocessor_config.json
The test split of SOURCE (when it has one) is used as the test set unless --test says otherwise.
Exit status: 0 when nothing at --fail-on severity or worse was found, 1 otherwise (2: usage error)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from normlab.check._findings import CODES, FAIL_ON
    from normlab.data.cli import add_dataset_arguments

    p = sub.add_parser(
        "check",
        help="find normalization mistakes (unscaled pixels, wrong axis, test-set statistics, ...)",
        description="Check raw data, normalized data and normalization statistics for the mistakes that "
        "silently cost accuracy. Findings go to stdout, errors first; the exit status gates a CI pipeline. "
        "Codes: " + ", ".join(CODES) + ".",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", nargs="?", help="the raw training data: a dataset spec (mnist:DIR, breast-cancer, "
                   "x.npy, ...)")
    p.add_argument("--normalized", metavar="FILE", help="the training data after your normalization (.npy), "
                   "same samples in the same order")
    p.add_argument("--test", metavar="SPEC", default="auto",
                   help="the raw test data: a split of SOURCE (test, validation), another spec, 'auto' (default: "
                   "SOURCE's test split if it has one) or 'none'")
    p.add_argument("--test-normalized", metavar="FILE", help="the test data after your normalization (.npy)")
    p.add_argument("--normalizer", metavar="FILE", help="a normalizer saved with normalizer.save()")
    p.add_argument("--stats", metavar="FILE|JSON", help="statistics you normalize with: a file from `normlab stats "
                   "--out`, a JSON file, or inline JSON such as '{\"mean\": [0.1307], \"std\": [0.3081]}'")
    p.add_argument("--mean", type=float, nargs="+", metavar="M", help="mean(s) you normalize with")
    p.add_argument("--std", type=float, nargs="+", metavar="S", help="std(s) you divide by")
    p.add_argument("--var", type=float, nargs="+", metavar="V", help="variance(s), if that is what you pass")
    p.add_argument("--model", metavar="FILE", help="the model the data is fed to (.keras, .pt state_dict, .pt2 torch.export, .onnx): "
                   "its input normalization layers are composed with the data; nothing of it is executed")
    p.add_argument("--expects", metavar="NAME|FILE", help="what the (pretrained) model was trained on: unit, "
                   "minus-one-one, imagenet, caffe, standardized, or a preprocessor_config.json / timm config")
    p.add_argument("--per", default="auto", choices=["auto", "global", "channel", "feature"],
                   help="what one statistic is computed for (default: channel for images, feature for tables)")
    p.add_argument("--channel-axis", type=int, default=None,
                   help="where channels are: -1 (channels-last, the default for files) or 1 (channels-first)")
    p.add_argument("--ignore", action="append", default=[], metavar="CODE", choices=list(CODES),
                   help="a code not to report (repeat for several)")
    p.add_argument("--fail-on", default="error", choices=list(FAIL_ON),
                   help="exit with status 1 when a finding of this severity or worse exists (default: error)")
    p.add_argument("--max-samples", type=int, default=2000, metavar="N",
                   help="samples used by the per-sample analyses (statistics always use all samples)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the readable report")
    add_dataset_arguments(p)
    p.set_defaults(run=run)


def _usage(message: str) -> None:
    print(f"normlab check: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _stats_arg(args: argparse.Namespace) -> Any:
    given = {k: getattr(args, k) for k in ("mean", "std", "var") if getattr(args, k) is not None}
    if given and args.stats:
        _usage("use either --stats or --mean/--std/--var, not both")
    if given and ("mean" not in given or len(given) != 2):
        _usage("--mean needs exactly one of --std or --var (and --std/--var need --mean)")
    return given or args.stats


def run(args: argparse.Namespace) -> int:
    import normlab.adapters  # noqa: F401  (registers the model readers behind --model)
    import normlab.check as nc
    from normlab.check._data import dataset_samples
    from normlab.data.cli import open_from_args

    train = test = None
    names_split = getattr(args, "split", None) or "train"
    if args.source:
        dataset = open_from_args(args.source, args)
        train, note = dataset_samples(dataset, names_split)  # mixed-size image folders: pooled as pixels
        source = f"{args.source} [{names_split}]"
        test_spec = args.test
        if test_spec == "auto":
            test_spec = "test" if "test" in dataset.splits and names_split != "test" else "none"
        if test_spec in dataset.splits:
            x_test, test_note = dataset_samples(dataset, test_spec)
            test = (x_test, f"{args.source} [{test_spec}]", test_note)
        elif test_spec != "none":
            test = (open_from_args(test_spec, args), test_spec, "")
        train_arg: Any = _Named(train, source, getattr(dataset, "feature_names", None), note)
    else:
        train_arg = None
        if args.test not in ("auto", "none"):
            test = (open_from_args(args.test, args), args.test, "")
    test_arg = None
    if test is not None:
        obj, label, test_note = test
        test_arg = obj if not hasattr(obj, "shape") else _Named(obj, label, None, test_note)
    report = nc.check(
        train_arg, normalized=args.normalized, test=test_arg, test_normalized=args.test_normalized,
        normalizer=args.normalizer, stats=_stats_arg(args), per=args.per, channel_axis=args.channel_axis,
        ignore=args.ignore, max_samples=args.max_samples, model=args.model, expects=args.expects,
    )
    print(report.to_json() if args.json else report.to_text())
    code = report.exit_code(args.fail_on)
    if code and not args.json:
        print(f"failing: findings at --fail-on {args.fail_on} or worse", file=sys.stderr)
    return code


class _Named:
    """An array with the name it was opened from, as ``normlab.check`` reports it (a one-split dataset)."""

    def __init__(self, x: Any, name: str, feature_names: Any, pooled_note: str = "") -> None:
        self._x = x
        self.pooled_note = pooled_note  # images of mixed sizes read as their pixels (check._data)
        self.name = name.rsplit(" [", 1)[0]
        self._split = name.rsplit(" [", 1)[1].rstrip("]") if " [" in name else "train"
        self.splits = (self._split,)
        self.default_split = self._split
        self.feature_names = tuple(feature_names) if feature_names else None

    def arrays(self, split: str | None = None) -> tuple[Any, None]:
        return self._x, None
