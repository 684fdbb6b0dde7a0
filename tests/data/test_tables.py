"""Tables (csv:FILE, parquet:FILE): numeric features, labels, and the messages for bad columns."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import normlab.data
from normlab.errors import DatasetError

pd = pytest.importorskip("pandas")

CUSTOMERS = """Name,Age,Income,Segment,Churned
Ann,34,52000.5,gold,no
Bob,51,73000,silver,yes
Cy,23,21000,gold,no
Di,45,99000,bronze,yes
Ed,38,40500,silver,no
"""


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_numeric_features_float64_and_text_target_as_classes(tmp_path):
    path = write(tmp_path, CUSTOMERS)
    ds = normlab.data.open(f"csv:{path}", target="Segment", drop=["Name", "Churned"])
    assert (
        ds.feature_names == ("Age", "Income") and ds.layout == "(n, f)" and ds.dtype == np.float64
    )
    assert ds.class_names == ("bronze", "gold", "silver") and ds.n_classes == 3
    x, y = ds.arrays()
    assert x.shape == (5, 2) and x.flags.c_contiguous
    assert x[0].tolist() == [34.0, 52000.5]
    assert y.tolist() == [1, 2, 1, 0, 2] and y.dtype == np.int64


def test_all_integer_columns_stay_int64(tmp_path):
    path = write(tmp_path, "a,b,label\n1,2,0\n3,4,1\n5,6,1\n")
    ds = normlab.data.open(f"csv:{path}", target="label")
    x, y = ds.arrays()
    assert (
        x.dtype == np.int64 and x.tolist() == [[1, 2], [3, 4], [5, 6]] and y.tolist() == [0, 1, 1]
    )


def test_csv_is_streamed_in_order_across_chunks(tmp_path, monkeypatch):
    import normlab.data.tables as tables

    monkeypatch.setattr(tables, "_SCAN_ROWS", 7)  # several scan chunks
    rows = "\n".join(f"{i},{i * 0.5},{i % 3}" for i in range(50))
    path = write(tmp_path, "i,h,y\n" + rows + "\n")
    ds = normlab.data.open(f"csv:{path}", target="y", validation_split=0.2)
    parts = list(ds.iter_batches(6))
    x = np.concatenate([p[0] for p in parts])
    assert [len(p[0]) for p in parts] == [6] * 6 + [4]
    assert x[:, 0].tolist() == list(range(40)) and x[:, 1].tolist() == [i * 0.5 for i in range(40)]
    xv, yv = ds.arrays("validation")
    assert xv[:, 0].tolist() == list(range(40, 50)) and yv.tolist() == [
        i % 3 for i in range(40, 50)
    ]


def test_float_target_with_fractions_is_a_regression_target(tmp_path):
    path = write(tmp_path, "a,price\n1,2.5\n2,3.25\n3,2.5\n")
    ds = normlab.data.open(f"csv:{path}", target="price")
    assert ds.n_classes is None and ds.class_names is None
    assert ds.arrays()[1].tolist() == [2.5, 3.25, 2.5]


def test_breast_cancer_scales_through_a_csv(tmp_path):
    """The Age-vs-Income problem: features spanning many orders of magnitude come through intact."""
    bc = normlab.data.open("breast-cancer")
    x, y = bc.arrays()
    frame = pd.DataFrame(x, columns=bc.feature_names)
    frame["diagnosis"] = np.array(bc.class_names)[y]
    frame.to_csv(tmp_path / "bc.csv", index=False)
    ds = normlab.data.open(f"csv:{tmp_path / 'bc.csv'}", target="diagnosis")
    xc, yc = ds.arrays()
    assert np.allclose(xc, x, rtol=1e-15, atol=0) and ds.feature_names == bc.feature_names
    assert ds.class_names == ("benign", "malignant") and np.array_equal(
        np.array(ds.class_names)[yc], frame["diagnosis"]
    )
    spread = xc.max(axis=0) / np.maximum(xc.min(axis=0), 1e-12)
    assert xc.max() > 4000 and xc[:, bc.feature_names.index("mean fractal dimension")].max() < 0.1
    assert spread.max() > 1e3


# ---------------------------------------------------------------- refused tables
def test_text_in_a_numeric_column_names_column_row_and_value(tmp_path):
    text = (
        "Age,Income\n" + "".join(f"{20 + i},{1000 * i}\n" for i in range(30)) + "41,n/a?\n50,9000\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(
        DatasetError,
        match=r"column 'Income' is numeric but data row 31 \(line 32 of t\.csv\) holds the text 'n/a\?'; expected a number",
    ):
        normlab.data.open(f"csv:{path}")


def test_non_numeric_columns_are_listed_with_the_drop_fix(tmp_path):
    path = write(tmp_path, CUSTOMERS)
    with pytest.raises(
        DatasetError,
        match=r"non-numeric column\(s\) 'Name', 'Segment' in t\.csv; expected numeric feature columns only\. "
        r"Drop them with drop=\['Churned', 'Name', 'Segment'\] \(CLI: --drop Churned Name Segment\)",
    ):
        normlab.data.open(f"csv:{path}", drop=["Churned"])


def test_missing_target_column_lists_the_columns(tmp_path):
    path = write(tmp_path, CUSTOMERS)
    with pytest.raises(
        DatasetError,
        match=r"no target column 'churned' in t\.csv; expected one of its columns: 'Name', 'Age', 'Income', 'Segment', 'Churned'\. Did you mean target='Churned'\?",
    ):
        normlab.data.open(f"csv:{path}", target="churned")


def test_unknown_drop_and_empty_target_are_refused(tmp_path):
    path = write(tmp_path, "a,b\n1,x\n2,\n")
    with pytest.raises(DatasetError, match=r"drop= names 'c', which t\.csv does not have"):
        normlab.data.open(f"csv:{path}", drop=["c"])
    with pytest.raises(DatasetError, match=r"the target column 'b' is empty on data row 2"):
        normlab.data.open(f"csv:{path}", target="b")


def test_semicolon_file_gets_a_separator_hint(tmp_path):
    path = write(tmp_path, "a;b\n1;2\n")
    with pytest.raises(DatasetError, match=r"The header looks ';'-separated: pass sep=';'"):
        normlab.data.open(f"csv:{path}")
    assert normlab.data.open(f"csv:{path}", sep=";").arrays()[0].tolist() == [[1, 2]]


def test_empty_csv_is_refused(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(DatasetError, match=r"t\.csv: the file is empty \(zero bytes\)"):
        normlab.data.open(f"csv:{path}")


# ---------------------------------------------------------------- parquet
def test_parquet_round_trip_and_string_columns(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(
        {
            "age": [34, 51, 23, 45],
            "income": [52000.5, 73000.0, 21000.0, 99000.0],
            "city": list("abca"),
            "y": [1, 0, 1, 1],
        }
    )
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, row_group_size=3)
    with pytest.raises(
        DatasetError, match=r"non-numeric column\(s\) 'city' in t\.parquet.*drop=\['city'\]"
    ):
        normlab.data.open(f"parquet:{path}", target="y")
    ds = normlab.data.open(str(path), target="y", drop=["city"])
    assert ds.kind == "parquet" and ds.feature_names == ("age", "income") and ds.dtype == np.float64
    parts = list(ds.iter_batches(2))
    assert [len(p[0]) for p in parts] == [2, 2]
    x = np.concatenate([p[0] for p in parts])
    assert x.tolist() == frame[["age", "income"]].to_numpy().tolist()
    assert np.concatenate([p[1] for p in parts]).tolist() == [1, 0, 1, 1]
    ints = normlab.data.open(f"parquet:{path}", drop=["city", "income"], target="y")
    assert ints.dtype == np.int64 and ints.arrays()[0][:, 0].tolist() == [34, 51, 23, 45]


def test_missing_pandas_names_the_extra(tmp_path, monkeypatch):
    path = write(tmp_path, "a\n1\n")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(DatasetError, match=r"pip install 'normlab\[tables\]'"):
        normlab.data.open(f"csv:{path}")
