"""Dataset layer: wall time and peak memory of streaming vs loading everything first.

For MNIST's IDX files (train 60,000 and t10k 10,000 images) and the CIFAR-10 JPEG folder (1,000
images), each variant runs in a fresh Python process; its peak resident memory comes from the
kernel's accounting of that process (``os.wait4`` -> ``ru_maxrss``), its wall time from the parent.

Variants:

* ``normlab stats``       the CLI end to end (streams the data once; exact statistics and quartiles).
* ``stream only``         ``normlab.data.open(spec).iter_batches()`` with nothing done per batch.
* ``load only``           the obvious full load: ``gzip`` + ``np.frombuffer`` / Pillow + ``np.stack``.
* ``load + NumPy stats``  that, then per-channel mean, std, min, max and quartiles with NumPy.
* ``python + numpy``      an interpreter that imports NumPy and exits (the floor under every figure).

Run ``python benchmarks/bench_data.py`` (``--repeat N``, ``--json``); the data folder defaults to
``../shared/data`` beside the repository.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

VARIANTS = ("normlab stats", "stream only", "load only", "load + NumPy stats")


# ---------------------------------------------------------------- what runs inside each worker
def _load_idx(folder: Path, word: str):
    import numpy as np

    raw_file = folder / f"{word}-images-idx3-ubyte"
    if raw_file.exists():  # the un-gzipped copy
        x = np.fromfile(raw_file, np.uint8, offset=16).reshape(-1, 28, 28, 1)
        labels = np.fromfile(folder / f"{word}-labels-idx1-ubyte", np.uint8, offset=8).astype(
            np.int64
        )
        return x, labels
    with gzip.open(folder / f"{word}-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    with gzip.open(folder / f"{word}-labels-idx1-ubyte.gz", "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28, 1)
    return x, labels


def _load_images(folder: Path):
    import numpy as np
    from PIL import Image

    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    images, labels = [], []
    for i, c in enumerate(classes):
        for p in sorted((folder / c).iterdir()):
            with Image.open(p) as im:
                images.append(np.asarray(im.convert("RGB")))
            labels.append(i)
    return np.stack(images), np.array(labels, np.int64)


def _numpy_stats(x) -> None:
    import numpy as np

    flat = x.reshape(-1, x.shape[-1])
    flat.mean(axis=0), flat.std(axis=0), flat.min(axis=0), flat.max(axis=0)
    np.percentile(flat, [25, 50, 75], axis=0)


def worker(variant: str, case: str, folder: str) -> None:
    path = Path(folder)
    kind, _, split = case.partition("/")
    spec = f"mnist:{path}" if kind.startswith("mnist") else f"images:{path}"
    if variant == "python + numpy":
        import numpy  # noqa: F401

        return
    if variant == "normlab stats":
        from normlab.cli.main import main

        sys.stdout = open(os.devnull, "w")
        main(["stats", spec, "--split", split] if split else ["stats", spec])
        return
    if variant == "stream only":
        import normlab.data

        ds = normlab.data.open(spec)
        n = sum(len(x) for x, _ in ds.iter_batches(split=split or None))
        assert n == ds.num_samples(split or None)
        return
    if kind.startswith("mnist"):
        x, _ = _load_idx(path, {"train": "train", "test": "t10k"}[split])
    else:
        x, _ = _load_images(path)
    if variant == "load + NumPy stats":
        _numpy_stats(x)


# ---------------------------------------------------------------- the parent: spawn, time, measure
def measure(variant: str, case: str, folder: Path) -> tuple[float, float]:
    """Run one variant in a fresh process: (wall seconds, peak RSS in MiB)."""
    cmd = [sys.executable, __file__, "--worker", variant, case, str(folder)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} on {case} failed with exit code {proc.returncode}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per variant (median wall, max memory)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON instead of a Markdown table"
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("VARIANT", "CASE", "FOLDER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    for sub in ("mnist", "cifar10-jpg-subset/test"):
        if not (args.data / sub).is_dir():
            raise SystemExit(f"data not found: {args.data / sub}; pass --data")
    raw = Path(tempfile.mkdtemp(prefix="bench_data_"))
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        with (
            gzip.open(args.data / "mnist" / f"{name}.gz", "rb") as src,
            open(raw / name, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
    cases = {
        "mnist/test": (
            args.data / "mnist",
            "MNIST t10k (IDX .gz), 10,000 x 28x28x1, 7.8 MB decoded",
        ),
        "mnist/train": (
            args.data / "mnist",
            "MNIST train (IDX .gz), 60,000 x 28x28x1, 47 MB decoded",
        ),
        "mnistraw/train": (raw, "MNIST train (IDX un-gzipped), 60,000 x 28x28x1, 47 MB"),
        "images/": (
            args.data / "cifar10-jpg-subset" / "test",
            "CIFAR-10 JPEG folder, 1,000 x 32x32x3, 3.1 MB decoded",
        ),
    }
    floor = [
        measure("python + numpy", "mnist/test", args.data / "mnist") for _ in range(args.repeat)
    ]
    rows = [
        {
            "case": "-",
            "variant": "python + numpy",
            "wall_s": statistics.median(w for w, _ in floor),
            "peak_mib": max(m for _, m in floor),
        }
    ]
    for case, (folder, label) in cases.items():
        for variant in VARIANTS:
            runs = [measure(variant, case, folder) for _ in range(args.repeat)]
            rows.append(
                {
                    "case": label,
                    "variant": variant,
                    "wall_s": statistics.median(w for w, _ in runs),
                    "peak_mib": max(m for _, m in runs),
                }
            )
            print(
                f"{label:<60} {variant:<20} {rows[-1]['wall_s']:6.2f} s {rows[-1]['peak_mib']:7.1f} MiB",
                file=sys.stderr,
            )
    shutil.rmtree(raw, ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"| data | variant | wall time (median of {args.repeat}) | peak RSS |")
    print("|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['variant']} | {r['wall_s']:.2f} s | {r['peak_mib']:.0f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
