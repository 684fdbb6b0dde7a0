"""``normlab report RUNDIR``: rebuild a comparison's report from its results database."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  normlab report runs/mnist-cnn                    rebuild report.html, curves.png, final.png, CSVs
  normlab report runs/mnist-cnn --baseline max     test every method against 'max' instead
works on a sweep that is still missing runs (the report says how many)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="rebuild a comparison's report.html, figures and CSV files from its run folder",
        description="Read the results database of a `normlab compare` run folder and write report.html, "
        "curves.png, final.png, summary.csv, epochs.csv and config.json again. The summary table goes to "
        "stdout.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("rundir", metavar="RUNDIR", help="the --out folder of a `normlab compare` run")
    p.add_argument(
        "--baseline",
        default=None,
        metavar="METHOD",
        help="method to test against (default: as run)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the summary rows as JSON instead of a table"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from normlab.cli.compare import result_json
    from normlab.experiments import report

    result = report(args.rundir, baseline=args.baseline)
    if args.json:
        print(result_json(result))
        return 0
    print(result.table())
    if result.n_finished < result.n_planned:
        print(f"{result.n_planned - result.n_finished} of {result.n_planned} planned runs are missing; run the "
              "same `normlab compare` command again to finish the sweep.")  # fmt: skip
    print(f"report: {result.report_path}")
    return 0
