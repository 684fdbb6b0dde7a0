"""Byte-level fuzzing of every file reader: ``python _fuzz.py SECONDS`` (run by test_fuzz.py under RLIMIT_AS).

Valid small IDX (gzip and raw), CIFAR, .npy, .npz (stored and compressed), CSV and PNG/JPEG datasets
are written, then one of their files is mutated by hypothesis (bytes replaced, the file cut, bytes
inserted or a run repeated) and the dataset is opened and read through every entry point. Anything
other than a NormlabError fails; so does an example that runs past ``HANG_SECONDS`` (a hang guard, no
speed claim) and, because the process runs under RLIMIT_AS, any allocation the readers do not bound.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import _hostile as hostile

import normlab.data
from normlab.errors import NormlabError

HANG_SECONDS = 30


def _valid(root: Path) -> dict[str, tuple[str, Path]]:
    """Each format: (spec, the file to mutate)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    labels = np.arange(6) % 10
    gz = hostile.write_mnist(root / "idx-gz", images, labels)
    raw = hostile.write_mnist(root / "idx-raw", images, labels, compress=False)
    (root / "cifar").mkdir()
    (root / "cifar" / "test_batch").write_bytes(hostile.cifar_batch(3))
    np.save(root / "x.npy", rng.normal(size=(5, 3)).astype(np.float32))
    (root / "s.npz").write_bytes(hostile.npz_bytes(x=rng.integers(0, 9, (5, 2, 2)), y=np.arange(5)))
    (root / "c.npz").write_bytes(hostile.npz_bytes(True, x_train=np.eye(4), y_train=np.arange(4) % 2))
    (root / "t.csv").write_text('a,b,"c d",y\n1,2.5,3,x\n4,5,6,y\n"7",8,9e3,x\n')
    (root / "u.csv").write_text("a;b\n18446744073709551615;1\n0;2\n")
    for kind, fmt in (("png", "PNG"), ("jpg", "JPEG")):
        for cls in ("a", "b"):
            (root / kind / cls).mkdir(parents=True)
            (root / kind / cls / f"0.{kind}").write_bytes(hostile.png_bytes(images[:3].reshape(4, 12) * 0 + images[0, 0, 0], fmt))
    return {
        "idx-gz-images": (f"mnist:{gz}", gz / "train-images-idx3-ubyte.gz"),
        "idx-gz-labels": (f"mnist:{gz}", gz / "t10k-labels-idx1-ubyte.gz"),
        "idx-raw-images": (f"mnist:{raw}", raw / "train-images-idx3-ubyte"),
        "idx-raw-labels": (f"mnist:{raw}", raw / "train-labels-idx1-ubyte"),
        "cifar": (f"cifar10:{root / 'cifar'}", root / "cifar" / "test_batch"),
        "npy": (f"npy:{root / 'x.npy'}", root / "x.npy"),
        "npz-stored": (f"npz:{root / 's.npz'}", root / "s.npz"),
        "npz-compressed": (f"npz:{root / 'c.npz'}", root / "c.npz"),
        "csv": (f"csv:{root / 't.csv'}", root / "t.csv"),
        "csv-sep": (f"csv:{root / 'u.csv'}", root / "u.csv"),
        "png": (f"images:{root / 'png'}", root / "png" / "a" / "0.png"),
        "jpeg": (f"images:{root / 'jpg'}", root / "jpg" / "b" / "0.jpg"),
    }


def _options(name: str) -> dict:
    if name == "csv":
        return {"target": "y"}
    if name == "csv-sep":
        return {"sep": ";"}
    return {}


def mutate(data: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, length, payload in ops:
        pos = pos % (len(buf) + 1)
        if kind == 0:  # replace
            buf[pos : pos + len(payload)] = payload
        elif kind == 1:  # cut the file
            del buf[pos:]
        elif kind == 2:  # insert
            buf[pos:pos] = payload
        else:  # repeat a run
            buf[pos:pos] = buf[pos : pos + length] * 3
    return bytes(buf)


def exercise(spec: str, options: dict) -> None:
    """Open ``spec`` and read it every way a user can; only NormlabError may come out."""
    try:
        ds = normlab.data.open(spec, **options)
        for split in ds.splits:
            for _ in ds.iter_batches(2, split=split):
                pass
            ds.arrays(split)
            ds.labels(split)
            ds.class_counts(split)
            repr(ds)
    except NormlabError:
        pass


OPS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(1, 64), st.binary(min_size=1, max_size=8)),
    min_size=1,
    max_size=4,
)


def _alarm(signum, frame):  # pragma: no cover - only on a hang
    raise TimeoutError(f"one fuzz example ran past {HANG_SECONDS} s")


def main(seconds: float) -> int:
    root = Path(tempfile.mkdtemp(prefix="normlab-fuzz-"))
    pristine = root / "pristine"
    pristine.mkdir()
    files = _valid(pristine)
    names = sorted(files)
    signal.signal(signal.SIGALRM, _alarm)

    @settings(max_examples=20, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(name=st.sampled_from(names), ops=OPS)
    def one(name: str, ops: list) -> None:
        work = root / "work"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(pristine, work)
        spec, target = files[name]
        spec = spec.replace(str(pristine), str(work))
        target = work / target.relative_to(pristine)
        target.write_bytes(mutate(target.read_bytes(), ops))
        signal.alarm(HANG_SECONDS)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a warning is an exception the user would see too
                exercise(spec, _options(name))
        finally:
            signal.alarm(0)

    stop = time.monotonic() + seconds
    rounds = 0
    try:
        while time.monotonic() < stop or rounds == 0:
            one()
            rounds += 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"fuzz: {rounds * 20} examples over {len(names)} formats")
    return 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 3.0))
