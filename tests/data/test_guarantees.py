"""What every dataset reader guarantees under hostile or unusual files, one test per class of failure.

1. No value is changed silently: exact integers at every magnitude, one bit depth per image folder, every
   CSV line as wide as its header; otherwise a DatasetError.
2. Memory is bounded by the real data (a batch plus the statistics), not by what a header claims or a
   value implies, and work by the bytes read; a clear error comes before an allocation larger than the
   machine. Checked in a child process under RLIMIT_AS.
3. A bad input is one ``Error:`` line from the CLI, brief, with control characters escaped.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import normlab.data
from normlab.errors import DatasetError

sys.path.insert(0, str(Path(__file__).parent))
import _hostile as hostile

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")
pytest.importorskip("PIL")

# ---------------------------------------------------------------- 1. no value changed silently

U64 = [2**64 - 1, 2**63, 2**63 + 12345, 0]


def _uint64_csv(tmp: Path) -> Path:
    path = tmp / "u.csv"
    path.write_text("a,b\n" + "".join(f"{v},{i}\n" for i, v in enumerate(U64)))
    return path


def _uint64_parquet(tmp: Path) -> Path:
    import pyarrow.parquet as pq

    path = tmp / "u.parquet"
    pq.write_table(pa.table({"a": pa.array(U64, pa.uint64()), "b": pa.array(range(4), pa.uint8())}), path)
    return path


@pytest.mark.parametrize("make", [_uint64_csv, _uint64_parquet], ids=["csv", "parquet"])
def test_uint64_table_values_above_2_63_stay_exact(tmp_path, make):
    ds = normlab.data.open(f"{make(tmp_path).suffix[1:]}:{make(tmp_path)}")
    x, _ = ds.arrays()
    assert ds.dtype == np.uint64
    assert [int(v) for v in x[:, 0]] == U64  # Python ints: no wrap to negative, no rounding
    total = sum(int(v) for x, _ in ds.iter_batches(3) for v in x[:, 0])
    assert Fraction(total, 4) == Fraction(sum(U64), 4)


WRONG = {
    "csv-extra-field": ("csv", "a,b,c\n1,2,3\n4,5,6,7\n", r"line 3 of t\.csv has 4 fields, more than the 3"),
    "csv-missing-field": ("csv", "a,b,c\n1,2,3\n8,9\n", r"line 3 of t\.csv has 2 fields, fewer than the 3"),
    "csv-extra-field-quoted": ("csv", 'a,b\n"x,1",2\n3,4,5\n', r"line 3 of t\.csv has 3 fields"),
    "csv-int-beside-float-above-2**53": ("csv", "a,b\n9007199254740993,1.5\n", r"beyond 2\*\*53.*would round"),
    "csv-int-with-empty-above-2**53": ("csv", "a,b\n9007199254740993,1\n,2\n", r"above 2\*\*53 together with empty"),
    "csv-uint64-beside-negative": ("csv", "a,b\n9223372036854775808,-1\n", r"no 64-bit integer type holds both"),
    "csv-20-digit-integer": ("csv", "a,b\n123456789012345678901,1\n", r"'123456789012345678901', which no 64-bit"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_no_value_is_changed_silently(tmp_path, case):
    """Every way a table value could be dropped, wrapped or rounded is an error that names the place."""
    kind, text, match = WRONG[case]
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=match):
        normlab.data.open(f"{kind}:{path}").arrays()


def test_image_folder_has_one_bit_depth_or_names_two_files(tmp_path):
    (tmp_path / "a").mkdir()
    deep = np.array([[0, 1000], [65535, 7]], np.uint16)
    (tmp_path / "a" / "0.png").write_bytes(hostile.png_bytes(deep))
    (tmp_path / "a" / "1.png").write_bytes(hostile.png_bytes(np.full((2, 2), 200, np.uint8)))
    with pytest.raises(DatasetError, match=r"a/0\.png has 16 bits per channel but a/1\.png has 8"):
        normlab.data.open(f"images:{tmp_path}").arrays()
    with pytest.raises(DatasetError, match=r"one bit depth"):  # the other order too, and for statistics
        (tmp_path / "a" / "0.png").rename(tmp_path / "a" / "2.png")
        list(normlab.data.open(f"images:{tmp_path}").iter_batches())
    (tmp_path / "a" / "1.png").unlink()  # 16-bit alone: kept exactly, also as color="gray"
    for color in ("auto", "gray"):
        x, _ = normlab.data.open(f"images:{tmp_path}", color=color).arrays()
        assert x.dtype == np.uint16 and x[0, :, :, 0].tolist() == deep.tolist()


def test_labels_are_class_indices_only_where_exact(tmp_path):
    x = np.zeros((3, 2), np.float32)
    cases = {
        "float-huge": (np.array([1e30, 0.0, 1.0]), None, [1e30, 0.0, 1.0]),
        "sparse-3e7": (np.array([0, 30_000_000, 1]), None, [0, 30_000_000, 1]),
        "dense": (np.array([2, 0, 1], np.uint8), 3, [2, 0, 1]),
    }
    for name, (y, n_classes, exact) in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(hostile.npz_bytes(x=x, y=y))
        ds = normlab.data.open(f"npz:{path}")
        assert ds.n_classes == n_classes, name
        assert ds.labels().tolist() == exact, name
    path = tmp_path / "t.csv"
    path.write_text("a,y\n1,1e30\n2,0\n3,1\n")  # a float target with huge integer values stays a target
    ds = normlab.data.open(f"csv:{path}", target="y")
    assert ds.n_classes is None and ds.labels().tolist() == [1e30, 0.0, 1.0]


# ---------------------------------------------------------------- 2. memory and time bounded

#: Address space for the child: the interpreter with NumPy, pandas and Pillow takes about 350 MB of it.
ADDRESS_SPACE = 1200 * 2**20
#: What a reader may hold on top of the bare interpreter: a few 8 MiB batches plus overhead, with margin.
READER_RSS = 160 * 2**20

BASELINE = """
import normlab.data, pandas, PIL.Image
"""


def _bounded(code: str) -> dict:
    base = hostile.run_bounded(BASELINE, address_space=ADDRESS_SPACE)
    out = hostile.run_bounded(BASELINE + code, address_space=ADDRESS_SPACE)
    out["extra_rss"] = out["maxrss"] - base["maxrss"]
    return out


def test_gzip_idx_claiming_2_28_labels_is_streamed_in_bounded_memory(tmp_path):
    n = 2**28  # honest claim: 256 MB of labels from a ~260 KB file; held as int64 it would be 2 GB
    hostile.write_honest_gzip_idx(tmp_path / "train-images-idx3-ubyte.gz", (n, 1, 1))
    hostile.write_honest_gzip_idx(tmp_path / "train-labels-idx1-ubyte.gz", (n,))
    out = _bounded(f"""
ds = normlab.data.open("mnist:{tmp_path}")
out["n"] = ds.num_samples()
batches = ds.iter_batches(2**20)
out["first"] = [len(next(batches)[0]) for _ in range(3)]
try:
    ds.class_counts()  # needs every label as int64 (2 GB): refused before it is allocated
except normlab.errors.DatasetError as exc:
    out["counts"] = str(exc)
""".replace("normlab.errors", "__import__('normlab.errors').errors"))
    assert out["outcome"] == "ok", out.get("message")
    assert out["n"] == n and out["first"] == [2**20] * 3
    assert "more than this machine's" in out["counts"]
    assert out["extra_rss"] < READER_RSS, out


def test_values_and_options_that_imply_huge_allocations_are_refused_or_bounded(tmp_path):
    npz = tmp_path / "sparse.npz"
    npz.write_bytes(hostile.npz_bytes(x=np.zeros((4, 2), np.uint8), y=np.array([0, 30_000_000, 1, 2])))
    (tmp_path / "img" / "a").mkdir(parents=True)
    (tmp_path / "img" / "a" / "0.png").write_bytes(hostile.png_bytes(np.zeros((2, 2), np.uint8)))
    out = _bounded(f"""
ds = normlab.data.open("npz:{npz}")
out["n_classes"] = ds.n_classes
out["names"] = ds.class_names
for what, call in (("resize", lambda: normlab.data.open("images:{tmp_path / 'img'}", resize=(100000, 100000))),
                   ("batch", lambda: next(ds.iter_batches(10**15)))):
    try:
        call()
        out[what] = "accepted"
    except Exception as exc:
        out[what] = type(exc).__name__ + ": " + str(exc)
""")
    assert out["outcome"] == "ok", out.get("message")
    assert out["n_classes"] is None and out["names"] is None  # no 30,000,001 class names
    assert out["resize"].startswith("DatasetError") and "10,000,000,000 pixels" in out["resize"]
    assert out["batch"].startswith("DatasetError") and "more than this machine's" in out["batch"]
    assert out["extra_rss"] < READER_RSS, out


def test_cifar_plain_check_is_linear_in_the_file_size(tmp_path):
    """10**9 paths through shared references in a few KB: each object is checked once (hang guard only)."""
    blob = hostile.shared_reference_pickle(levels=9, fan=10)
    assert len(blob) < 10_000
    (tmp_path / "test_batch").write_bytes(blob)
    out = _bounded(f"""
from normlab.data.cifar import read_batch
read_batch(__import__("pathlib").Path("{tmp_path / 'test_batch'}"))
""")
    assert out["outcome"] == "NormlabError" and "not a flat list of integers" in out["message"]
    assert out["extra_rss"] < READER_RSS, out


# ---------------------------------------------------------------- 3. one Error: line


def _bad_inputs(tmp: Path) -> dict[str, list[str]]:
    (tmp / "hdr.csv").write_text("a,b\n")
    (tmp / "latin1.csv").write_bytes(b"a,b\n1,caf\xe9\n")
    (tmp / "big.csv").write_text("a,b\n123456789012345678901,1\n")
    (tmp / "ok.csv").write_text("a,b\n1,2\n")
    (tmp / "long.csv").write_text("a,b\n1," + "x" * 5_000_000 + "\n2,3\n4,5\n")
    enc = hostile.encrypt_flag(hostile.npz_bytes(x=np.zeros((2, 2)), y=np.arange(2)))
    (tmp / "enc.npz").write_bytes(enc)
    odd = tmp / "odd\x1b[31m\nname"
    (odd / "a").mkdir(parents=True)
    (odd / "a" / "0.png").write_bytes(b"\x89PNG not really")
    return {
        "header-only-csv": [f"csv:{tmp / 'hdr.csv'}"],
        "latin1-csv": [f"csv:{tmp / 'latin1.csv'}"],
        "20-digit-integer": [f"csv:{tmp / 'big.csv'}"],
        "multi-character-sep": [f"csv:{tmp / 'ok.csv'}", "--sep", "::"],
        "40-mb-line-quoted-briefly": [f"csv:{tmp / 'long.csv'}"],
        "encrypted-npz-member": [f"npz:{tmp / 'enc.npz'}"],
        "control-characters-in-a-file-name": [f"images:{odd}"],
        "resize-beyond-the-pixel-limit": [f"images:{odd}", "--resize", "100000", "100000"],
    }


@pytest.mark.parametrize(
    "case",
    ["header-only-csv", "latin1-csv", "20-digit-integer", "multi-character-sep", "40-mb-line-quoted-briefly",
     "encrypted-npz-member", "control-characters-in-a-file-name", "resize-beyond-the-pixel-limit"],
)
def test_every_bad_input_is_one_brief_error_line(tmp_path, capsys, case):
    from normlab.cli.main import main

    args = _bad_inputs(tmp_path)[case]
    assert main(["stats", *args]) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith("Error: ") and "Traceback" not in err
    assert len(lines) == 2 and lines[1].startswith("hint: ")  # one line, plus the usual hint
    assert len(lines[0]) < 2500
    assert not any(ch in lines[0] for ch in "\x1b\r\x00")
