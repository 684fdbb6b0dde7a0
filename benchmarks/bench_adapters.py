"""Throughput of the exported normalizers: normlab's PyTorch module and Keras layers against the usual code.

One CIFAR-like batch, ``(256, 32, 32, 3)`` uint8 (channels-last; ``(256, 3, 32, 32)`` for the
channels-first rows), normalized per channel to float32. Throughput is GB/s of float32 output (3.1 MB per
call), the best of ``--repeat`` rounds of ``--calls`` calls, for each ``torch.set_num_threads`` in
``--threads`` (default 1 and 2); each round times every contender in turn, so that the noise of a shared
machine hits them alike.

PyTorch contenders:

* ``normlab.Standardize(per="channel").fit(x).to_torch()`` (eager and ``torch.jit.script``), channels-last
  and channels-first;
* the broadcast everyone writes, ``(x.float() - mean) / std`` with ``mean``, ``std`` of shape ``(3,)``;
* torchvision's recipe on ``(n, c, h, w)``: ``x.float().div(255)`` then ``Normalize``'s
  ``sub_(mean[:, None, None]).div_(std[:, None, None])``.

Keras contenders (``KERAS_BACKEND=torch``), each called eagerly on the uint8 batch:

* ``normalizer.to_keras()``, which is ``keras.layers.Normalization(mean=, variance=)`` for this normalizer;
* ``keras.layers.Normalization(axis=-1)`` adapted on the batch (Keras' own way to get there);
* ``normlab.keras.Normalize`` (the layer ``to_keras()`` uses when Keras' epsilon would change the result).

Also ``normalizer.transform`` (NumPy, numba kernel) for reference. Usage::

    python benchmarks/bench_adapters.py                # prints the markdown section
    python benchmarks/bench_adapters.py --readme       # and writes it into benchmarks/README.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from _readme import README, replace_section  # noqa: E402  (benchmarks/ is the script's folder)

TITLE = "## Framework adapters (`benchmarks/bench_adapters.py`)"


def best_seconds(fns: list, calls: int, repeat: int) -> list[float]:
    """Best seconds per call of each function; rounds interleave the functions, so that a noisy moment on
    a shared machine hits them all alike."""
    for fn in fns:
        for _ in range(3):
            fn()  # warm-up: allocations, compiled kernels, the profiling executor
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            best[i] = min(best[i], (time.perf_counter() - t) / calls)
    return best


def run(args, threads: int) -> tuple[list, list]:
    import torch

    import normlab

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(args.batch, 32, 32, 3), dtype=np.uint8)
    x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    out_bytes = x.size * 4
    norm = normlab.Standardize(per="channel").fit(x)
    norm_nchw = normlab.Standardize(per="channel", channel_axis=1).fit(x_nchw)
    xt, xt_nchw = torch.from_numpy(x), torch.from_numpy(x_nchw)
    mean = torch.tensor(norm.mean_, dtype=torch.float32)
    std = torch.tensor(norm.std_, dtype=torch.float32)
    mean01, std01 = (mean / 255)[:, None, None], (std / 255)[:, None, None]
    module, module_nchw = norm.to_torch(), norm_nchw.to_torch()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(module)
    expected = norm.transform(x)

    def check(y, layout="nhwc"):
        y = np.asarray(y)
        ref = expected if layout == "nhwc" else expected.transpose(0, 3, 1, 2)
        return float(np.max(np.abs(y - ref)))

    torch_rows = []
    with torch.inference_mode():
        contenders = [
            ("normlab `to_torch()` module, (n, h, w, c)", lambda: module(xt), "nhwc"),
            ("normlab module under `torch.jit.script`", lambda: scripted(xt), "nhwc"),
            ("normlab `to_torch()` module, (n, c, h, w)", lambda: module_nchw(xt_nchw), "nchw"),
            (
                "`(x.float() - mean) / std`, mean/std of shape (3,)",
                lambda: (xt.float() - mean) / std,
                "nhwc",
            ),
            (
                "torchvision recipe: `x.float().div(255)`, then `sub_(mean).div_(std)` on (n, c, h, w)",
                lambda: xt_nchw.float().div(255).sub_(mean01).div_(std01),
                "nchw",
            ),
            ("`normalizer.transform(x)` (NumPy, numba kernel)", lambda: norm.transform(x), "nhwc"),
        ]
        times = best_seconds([fn for _, fn, _ in contenders], args.calls, args.repeat)
        for (label, fn, layout), secs in zip(contenders, times, strict=True):
            y = fn()
            y = y.numpy() if hasattr(y, "numpy") else y
            torch_rows.append((label, out_bytes / secs / 1e9, secs * 1e3, check(y, layout)))

    keras_rows = []
    if not args.no_keras:
        import keras

        import normlab.keras

        ours = norm.to_keras()
        adapted = keras.layers.Normalization(axis=-1)
        adapted.adapt(x.astype(np.float32))
        custom = normlab.keras.Normalize(norm.center_, norm.scale_, per="channel", ndim=4)
        contenders = [
            (
                f"normlab `to_keras()` (= `keras.layers.{type(ours).__name__}(mean=, variance=)`)",
                ours,
            ),
            ("`keras.layers.Normalization(axis=-1)` after `adapt(x)`", adapted),
            ("`normlab.keras.Normalize` layer (long rows)", custom),
        ]
        with torch.inference_mode():
            times = best_seconds(
                [lambda layer=layer: layer(xt) for _, layer in contenders],
                args.calls,
                max(3, args.repeat // 4),
            )
            for (label, layer), secs in zip(contenders, times, strict=True):
                y = keras.ops.convert_to_numpy(layer(xt))
                keras_rows.append((label, out_bytes / secs / 1e9, secs * 1e3, check(y)))
    return torch_rows, keras_rows


def markdown(results, args, load) -> str:
    import torch

    lines = [
        TITLE,
        "",
        f"Run {_dt.date.today().isoformat()} on {platform.machine()} with {os.cpu_count()} cores, "
        f"torch {torch.__version__}; load average {load:.1f} at the start (the machine is shared: with other "
        "jobs on both cores, a 2-thread parallel region waits for a descheduled thread, so the 1-thread "
        f"figures are the steadier ones). One ({args.batch}, 32, 32, 3) uint8 batch normalized per channel "
        f"to float32 ({args.batch * 3072 * 4 / 1e6:.1f} MB of output); best of {args.repeat} rounds of "
        f"{args.calls} calls ({max(3, args.repeat // 4)} for Keras), the contenders interleaved within each "
        "round. `max |error|` is against `normalizer.transform` (NumPy).",
    ]
    for threads, (torch_rows, keras_rows) in results:
        lines += [
            "",
            f"| PyTorch, `torch.set_num_threads({threads})` | GB/s of output | ms per batch | "
            "max \\|error\\| |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {label} | {gbs:.2f} | {ms:.3f} | {err:.1e} |" for label, gbs, ms, err in torch_rows
        ]
        if keras_rows:
            lines += [
                "",
                f"| Keras 3 (torch backend), {threads} thread(s) | GB/s of output | ms per batch | "
                "max \\|error\\| |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| {label} | {gbs:.2f} | {ms:.3f} | {err:.1e} |"
                for label, gbs, ms, err in keras_rows
            ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", default="1,2", help="torch thread counts to measure, e.g. 1,2")
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--repeat", type=int, default=40)
    p.add_argument("--no-keras", action="store_true")
    p.add_argument(
        "--readme", action="store_true", help="write the section into benchmarks/README.md"
    )
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    results = [(t, run(args, t)) for t in (int(v) for v in str(args.threads).split(","))]
    section = markdown(results, args, load)
    print(section)
    if args.readme:
        replace_section(TITLE, section)
        print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
