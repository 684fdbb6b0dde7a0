"""Small hostile and unusual dataset files, built in the test (shared by the guarantee and fuzz tests)."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import resource
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np


def idx_bytes(dtype_code: int, dims: tuple[int, ...], data: bytes) -> bytes:
    return struct.pack(">BBBB", 0, 0, dtype_code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + data


def write_mnist(folder: Path, images: np.ndarray, labels: np.ndarray, *, compress: bool = True) -> Path:
    """The four MNIST files for ``images`` (n, h, w) uint8 and ``labels`` (n,), train and test the same."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        for part, blob in (
            ("images-idx3-ubyte", idx_bytes(8, images.shape, images.astype(np.uint8).tobytes())),
            ("labels-idx1-ubyte", idx_bytes(8, labels.shape, labels.astype(np.uint8).tobytes())),
        ):
            name = f"{split}-{part}" + (".gz" if compress else "")
            (folder / name).write_bytes(gzip.compress(blob, 6) if compress else blob)
    return folder


def write_honest_gzip_idx(path: Path, dims: tuple[int, ...], chunk: int = 1 << 24) -> None:
    """A gzip IDX file of zeros whose header honestly claims ``dims`` (tiny on disk, large decompressed)."""
    total = int(np.prod(dims))
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, len(dims)) + struct.pack(f">{len(dims)}I", *dims))
        zeros = bytes(chunk)
        left = total
        while left:
            k = min(left, chunk)
            f.write(zeros[:k])
            left -= k


def cifar_batch(n: int = 4, seed: int = 0, **extra: object) -> bytes:
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(n)]}
    batch.update(extra)  # type: ignore[arg-type]
    return pickle.dumps(batch, protocol=2)


def shared_reference_pickle(levels: int = 9, fan: int = 10) -> bytes:
    """A dict whose labels are one list referenced ``fan`` times per level: ``fan**levels`` paths, a few KB."""
    node: list = [0]
    for _ in range(levels):
        node = [node] * fan
    return pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": node}, protocol=2)


def encrypt_flag(npz: bytes) -> bytes:
    """An .npz whose members claim to be encrypted (flag bit 0 set in local and central headers)."""
    raw = bytearray(npz)
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = raw.find(sig)
        while pos >= 0:
            raw[pos + flag_at] |= 1
            pos = raw.find(sig, pos + 4)
    return bytes(raw)


def npz_bytes(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def png_bytes(a: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


def zip_member_names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.namelist()


_CHILD = """
import json, resource, sys, traceback
from normlab.errors import NormlabError
out = {}
try:
    exec(compile(sys.argv[1], "<bounded>", "exec"), {"out": out})
    out["outcome"] = "ok"
except NormlabError as exc:
    out["outcome"] = "NormlabError"
    out["message"] = str(exc)
except BaseException as exc:
    out["outcome"] = type(exc).__name__
    out["message"] = traceback.format_exc()[-2000:]
out["maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(out))
"""


def run_bounded(code: str, *, address_space: int, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter under ``RLIMIT_AS = address_space`` bytes.

    Returns ``{"outcome": "ok" | "NormlabError" | <exception name>, "message", "maxrss" (bytes), ...}``
    plus whatever ``code`` put in the dict ``out``. ``timeout`` only stops a hang (it is no speed claim).
    """

    def limit() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, code],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"child died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(lines[-1])
