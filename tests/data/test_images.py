"""Image folders (images:DIR): layouts, sizes, channels, and bad or hostile files."""

from __future__ import annotations

import io
import struct
import sys
import warnings
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import normlab.data
from normlab.errors import DatasetError, NormlabWarning

Image = pytest.importorskip("PIL.Image")


def save(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def gray_folder(
    root: Path, per_class: int = 3, h: int = 5, w: int = 4
) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    made: dict[str, list[np.ndarray]] = {}
    for cls in ("b_dog", "a_cat"):
        made[cls] = []
        for i in range(per_class):
            a = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
            save(root / cls / f"{i:03d}.png", a)
            made[cls].append(a)
    return made


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_grayscale_folder_gives_n_h_w_1_with_sorted_classes(tmp_path):
    made = gray_folder(tmp_path)
    (tmp_path / "a_cat" / "README.txt").write_text(
        "not an image"
    )  # ignored: not an image extension
    ds = normlab.data.open(f"images:{tmp_path}")
    assert ds.class_names == ("a_cat", "b_dog") and ds.n_classes == 2
    assert (ds.sample_shape, ds.dtype, ds.layout) == ((5, 4, 1), np.uint8, "(n, h, w, c)")
    x, y = ds.arrays()
    assert y.tolist() == [0, 0, 0, 1, 1, 1] and y.dtype == np.int64
    assert np.array_equal(x[..., 0], np.stack(made["a_cat"] + made["b_dog"]))
    assert [len(b[0]) for b in ds.iter_batches(4)] == [4, 2]
    assert ds.skipped == []


def test_colour_folder_and_split_folders(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("x", "y"):
            for i in range(n):
                save(
                    tmp_path / split / cls / f"{i}.png",
                    rng.integers(0, 256, size=(3, 2, 3), dtype=np.uint8),
                )
    ds = normlab.data.open(f"images:{tmp_path}", validation_split=0.25)
    assert ds.splits == ("train", "validation", "test") and ds.default_split == "train"
    assert ds.sample_shape == (3, 2, 3)
    assert (
        ds.num_samples("train") == 6
        and ds.num_samples("validation") == 2
        and ds.num_samples("test") == 4
    )
    assert ds.labels("validation").tolist() == [1, 1]  # the last quarter of train, in file order


def test_flat_folder_is_one_unlabeled_split(tmp_path):
    save(tmp_path / "a.png", np.zeros((2, 2, 3), np.uint8))
    save(tmp_path / "b.bmp", np.full((2, 2, 3), 9, np.uint8))
    ds = normlab.data.open(f"images:{tmp_path}")
    x, y = ds.arrays()
    assert y is None and ds.n_classes is None and x.shape == (2, 2, 2, 3) and x[1].max() == 9


def test_rgba_keeps_alpha_and_color_option_converts(tmp_path):
    save(tmp_path / "c" / "0.png", np.full((2, 2, 4), 200, np.uint8))
    save(tmp_path / "c" / "1.png", np.full((2, 2, 3), 100, np.uint8))
    assert normlab.data.open(f"images:{tmp_path}").sample_shape == (2, 2, 4)
    ds = normlab.data.open(f"images:{tmp_path}", color="rgb")
    x, _ = ds.arrays()
    assert x.shape == (2, 2, 2, 3) and x[0].max() == 200 and x[1].max() == 100


def test_grayscale_then_colour_is_an_error_with_the_fix(tmp_path):
    save(tmp_path / "c" / "0.png", np.zeros((2, 2), np.uint8))
    save(tmp_path / "c" / "1.png", np.zeros((2, 2, 3), np.uint8))
    ds = normlab.data.open(f"images:{tmp_path}")
    with pytest.raises(
        DatasetError,
        match=r"c/0\.png is grayscale but c/1\.png is colour \(mode RGB\).*Pass color='rgb'",
    ):
        ds.arrays()
    x, _ = normlab.data.open(f"images:{tmp_path}", color="rgb").arrays()
    assert x.shape == (2, 2, 2, 3)


def test_different_sizes_name_both_files_and_resize_fixes_it(tmp_path):
    save(tmp_path / "a" / "0.png", np.zeros((4, 6, 3), np.uint8))
    save(tmp_path / "a" / "1.png", np.zeros((4, 6, 3), np.uint8))
    save(tmp_path / "b" / "0.png", np.full((8, 3, 3), 255, np.uint8))
    ds = normlab.data.open(f"images:{tmp_path}")
    with pytest.raises(
        DatasetError,
        match=r"images have different sizes: a/0\.png is 4x6 \(h x w\) but b/0\.png is 8x3; expected one size for all\. "
        r"Pass resize=\(4, 6\) \(CLI: --resize 4 6\)",
    ):
        ds.arrays()
    x, y = normlab.data.open(f"images:{tmp_path}", resize=(5, 5)).arrays()
    assert x.shape == (3, 5, 5, 3) and y.tolist() == [0, 0, 1] and x[2].min() == 255


def test_16_bit_grayscale_stays_uint16(tmp_path):
    a = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000).astype(np.uint16)
    save(tmp_path / "a" / "0.png", a)
    ds = normlab.data.open(f"images:{tmp_path}")
    x, _ = ds.arrays()
    assert ds.dtype == np.uint16 and x.shape == (1, 3, 4, 1) and np.array_equal(x[0, :, :, 0], a)


def test_jpeg_is_decoded(tmp_path):
    save(tmp_path / "k" / "0.jpg", np.full((8, 8, 3), 128, np.uint8))
    x, _ = normlab.data.open(f"images:{tmp_path}").arrays()
    assert x.shape == (1, 8, 8, 3) and abs(int(x.mean()) - 128) <= 2


# ---------------------------------------------------------------- bad and hostile files
def _jpeg_bytes(size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(
        np.random.default_rng(0).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    ).save(buf, "JPEG")
    return buf.getvalue()


BAD = {
    "zero-byte": (b"", r"the file is empty \(zero bytes\)"),
    "corrupt": (b"this is not a JPEG at all" * 10, "not an image Pillow can identify"),
    "truncated": (None, "the image data is truncated"),
    "bomb": (
        png_claiming(30000, 30000),
        r"decompression bomb refused \(Image size \(900000000 pixels\) exceeds limit",
    ),
    "over-limit": (
        png_claiming(10000, 10000),
        r"decompression bomb refused \(Image size \(100000000 pixels\) exceeds limit",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_file_raises_naming_the_file(tmp_path, case):
    raw, message = BAD[case]
    if raw is None:
        raw = _jpeg_bytes(16)[:400]
    save(tmp_path / "ok" / "0.png", np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "ok" / "1.jpg").write_bytes(raw)
    ds = normlab.data.open(f"images:{tmp_path}")
    with pytest.raises(
        DatasetError, match=rf"cannot read ok/1\.jpg: {message}.*pass on_error='skip'"
    ):
        ds.arrays()


def test_pillow_pixel_limit_stays_on(tmp_path):
    assert Image.MAX_IMAGE_PIXELS == 89478485
    gray_folder(tmp_path)
    normlab.data.open(f"images:{tmp_path}", on_error="skip").arrays()  # reading never changes it
    assert Image.MAX_IMAGE_PIXELS == 89478485


def test_skip_leaves_bad_files_out_lists_them_and_warns_once(tmp_path):
    good = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    save(tmp_path / "a" / "0.png", good)
    (tmp_path / "a" / "1.png").write_bytes(b"")
    (tmp_path / "b" / "0.jpg").parent.mkdir()
    (tmp_path / "b" / "0.jpg").write_bytes(_jpeg_bytes(16)[:400])
    (tmp_path / "b" / "1.png").write_bytes(png_claiming(30000, 30000))
    save(tmp_path / "b" / "2.png", good)
    ds = normlab.data.open(f"images:{tmp_path}", on_error="skip")
    with pytest.warns(
        NormlabWarning,
        match=r"skipped 3 unreadable image file\(s\) \(first: a/1\.png: the file is empty",
    ):
        x, y = ds.arrays()
    assert x.shape == (2, 16, 16, 3) and y.tolist() == [0, 1] and np.array_equal(x[1], good)
    assert [Path(p).name for p, _ in ds.skipped] == ["1.png", "0.jpg", "1.png"]
    assert "decompression bomb" in ds.skipped[2][1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second pass finds nothing new: no second warning
        assert sum(len(b[0]) for b in ds.iter_batches(2)) == 2


def test_skip_when_the_first_file_is_bad(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "0.png").write_bytes(b"junk")
    save(tmp_path / "a" / "1.png", np.zeros((3, 3), np.uint8))
    ds = normlab.data.open(f"images:{tmp_path}", on_error="skip")
    assert ds.sample_shape == (3, 3, 1) and len(ds.skipped) == 1
    with pytest.warns(NormlabWarning, match="skipped 1 unreadable"):
        assert ds.arrays()[0].shape == (1, 3, 3, 1)


def test_folder_without_images_and_bad_options(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("x")
    with pytest.raises(
        DatasetError, match=r"no image files in .*expected one subfolder per class holding images"
    ):
        normlab.data.open(f"images:{tmp_path}")
    save(tmp_path / "cls" / "0.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(
        DatasetError, match=r"resize=\(0, 3\) is not a size; expected \(height, width\)"
    ):
        normlab.data.open(f"images:{tmp_path}", resize=(0, 3))
    with pytest.raises(DatasetError, match="on_error='ignore'; expected 'raise' or 'skip'"):
        normlab.data.open(f"images:{tmp_path}", on_error="ignore")


def test_progress_bar_goes_to_stderr_when_asked(tmp_path, capsys):
    gray_folder(tmp_path)
    ds = normlab.data.open(f"images:{tmp_path}", progress=True)
    ds.arrays()
    captured = capsys.readouterr()
    assert captured.out == "" and "decoding images in" in captured.err and "6/6" in captured.err
    list(normlab.data.open(f"images:{tmp_path}", progress=False).iter_batches())
    assert capsys.readouterr().err == ""


def test_split_folders_next_to_other_folders_are_refused(tmp_path):
    save(tmp_path / "train" / "cat" / "0.png", np.zeros((2, 2), np.uint8))
    save(tmp_path / "extra" / "0.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(
        DatasetError,
        match=r"holds split folders \(train\) and also extra; expected either split folders",
    ):
        normlab.data.open(f"images:{tmp_path}")


def test_missing_pillow_names_the_extra(tmp_path, monkeypatch):
    gray_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DatasetError, match=r"Install it with: pip install 'normlab\[images\]'"):
        normlab.data.open(f"images:{tmp_path}")


def test_images_of_any_size_give_pooled_channel_statistics_but_arrays_needs_one_size(tmp_path):
    import normlab

    save(tmp_path / "a" / "0.png", np.full((4, 6, 3), 10, np.uint8))
    save(tmp_path / "a" / "1.png", np.full((8, 3, 3), 250, np.uint8))
    save(tmp_path / "b" / "0.png", np.dstack([np.full((2, 5), v, np.uint8) for v in (1, 2, 3)]))
    ds = normlab.data.open(f"images:{tmp_path}")
    shapes = [x.shape for x, _ in ds.iter_batches(8)]
    assert shapes == [(1, 4, 6, 3), (1, 8, 3, 3), (1, 2, 5, 3)]  # a batch ends where the size changes
    s = normlab.stats(ds, per="channel")
    pixels = 24 + 24 + 10
    exact = [Fraction(24 * 10 + 24 * 250 + 10 * v, pixels) for v in (1, 2, 3)]
    assert s.count.tolist() == [pixels] * 3 and s.n_samples == 3
    assert [Fraction(float(m)) for m in s.mean] == [Fraction(float(e)) for e in exact]
    assert s.max.tolist() == [250] * 3 and s.min.tolist() == [1, 2, 3]
    fitted = normlab.Standardize(per="channel").fit(ds)
    assert np.allclose(fitted.mean_, [float(e) for e in exact])
    with pytest.raises(normlab.LayoutError, match=r"expected the same shape per sample"):
        normlab.stats(ds, per="feature")  # one statistic per pixel position needs one size
    with pytest.raises(DatasetError, match=r"images have different sizes.*Pass resize="):
        ds.arrays()


def test_16_bit_pgm_is_read_as_uint16_and_rgb_of_it_is_refused(tmp_path):
    deep = np.array([[0, 1000, 65535]], np.uint16)
    save(tmp_path / "a" / "0.pgm", deep, "PPM")
    x, _ = normlab.data.open(f"images:{tmp_path}").arrays()
    assert x.dtype == np.uint16 and x[0, :, :, 0].tolist() == deep.tolist()
    with pytest.raises(DatasetError, match=r"16-bit grayscale image but color='rgb'"):
        normlab.data.open(f"images:{tmp_path}", color="rgb")
