"""Folders of images (``images:DIR``): one subfolder per class, decoded with Pillow a batch at a time.

Layouts understood::

    DIR/<class>/**/<image>                       one split, "train"
    DIR/{train,test,val,...}/<class>/<image>     the split folders become splits
    DIR/<image>                                  no subfolders: one split, unlabeled

Classes are the subfolder names in sorted order (class ``i`` is ``class_names[i]``). Files are picked by
extension (PNG, JPEG, BMP, GIF, TIFF, WebP, PPM/PGM); hidden files and folders are ignored. Samples are
``uint8`` channels-last ``(n, h, w, c)``: ``c = 1`` for grayscale folders, 3 for colour (4 with alpha),
following the first image unless ``color=`` says otherwise; 16-bit grayscale files (PNG, TIFF, PGM) stay
``uint16``, also with ``color="gray"``. One bit depth per folder: an 8-bit file among 16-bit ones (or the
reverse) is an error naming both files, never clipped or mixed in unscaled; 16-bit colour (which Pillow
cuts to 8 bits) is refused.

Images may differ in size: ``iter_batches`` (and so statistics, ``fit(dataset)``) yields batches of one
size each, a batch ending where the size changes, for pooled per-channel statistics; ``sample_shape`` is the
first image's. ``arrays()`` needs one size unless ``resize=(h, w)`` is given (at most Pillow's pixel limit);
a differing image stops it with an error naming both files. Unreadable files (empty, truncated, corrupt, or over Pillow's decompression
bomb limit, which stays on) raise :class:`DatasetError`, or with ``on_error="skip"`` are left out, listed
in ``dataset.skipped`` and reported by one :class:`~normlab.errors.NormlabWarning` (at the end of
the first pass that meets them; later passes warn again only about files not reported yet).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from normlab._progress import Progress
from normlab.data._base import LoadedDataset, Source
from normlab.data._selection import Batch, Selection, as_index
from normlab.data._shards import Shard, skipped_message
from normlab.data._text import brief
from normlab.errors import DatasetError, NormlabWarning

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]

IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
    }
)
_SPLIT_NAMES = ("train", "training", "val", "valid", "validation", "test", "testing")
_SPLIT_CANON = {"training": "train", "val": "validation", "valid": "validation", "testing": "test"}

_GRAY_MODES = {"1", "L", "LA", "La"}
_GRAY16_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
_COLORS = {"auto": None, "gray": "L", "grey": "L", "rgb": "RGB", "rgba": "RGBA"}
_CHANNELS = {"L": 1, "I;16": 1, "RGB": 3, "RGBA": 4}


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError(
            "images: folders are decoded with Pillow, which is not installed; expected it for images:DIR "
            "specs. Install it with: pip install 'normlab[images]'"
        ) from None
    return Image


def _visible(entry: os.DirEntry) -> bool:
    return not entry.name.startswith((".", "__"))


def _image_files(folder: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for f in sorted(files):
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                out.append(Path(root, f))
    return out


def _subdirs(folder: Path) -> list[Path]:
    with os.scandir(folder) as it:
        return sorted(
            (Path(e.path) for e in it if e.is_dir() and _visible(e)), key=lambda p: p.name
        )


def _direct_images(folder: Path) -> list[Path]:
    with os.scandir(folder) as it:
        return sorted(
            Path(e.path)
            for e in it
            if e.is_file()
            and _visible(e)
            and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
        )


class _Shape:
    """The size and mode every image is decoded to, fixed by the first image read (or by options)."""

    def __init__(
        self, size: tuple[int, int] | None, mode: str | None, fixed_by: Path | None
    ) -> None:
        self.size = size  # (h, w)
        self.mode = mode
        self.fixed_by = fixed_by
        self.auto_mode = mode is None


def _bits(im: Any) -> int:
    """Bits per channel as stored: 16 for 16-bit files (also those Pillow opens in mode ``I``), else 8."""
    if im.mode in _GRAY16_MODES:
        return 16
    tile = getattr(im, "tile", None) or []
    args = tile[0].args if tile else None
    raw = args[0] if isinstance(args, tuple) and args else args
    if isinstance(raw, str) and ";16" in raw:
        return 16
    return 32 if im.mode in ("I", "F") else 8


def _target_mode(im: Any) -> str:
    mode = im.mode
    if mode in _GRAY_MODES:
        return "L"
    if mode in _GRAY16_MODES or (mode == "I" and _bits(im) == 16):
        return "I;16"
    if _bits(im) == 16:
        raise ValueError(
            f"16-bit colour images (mode {mode}) are decoded by Pillow to 8 bits per channel, which would "
            "change their values; convert them to 16-bit grayscale or to 8-bit colour first"
        )
    if mode in ("I", "F"):
        raise ValueError(
            f"32-bit {'integer' if mode == 'I' else 'float'} images (mode {mode}) are not supported"
        )
    if mode in ("RGBA", "PA", "RGBa") or (mode == "P" and "transparency" in im.info):
        return "RGBA"
    return "RGB"


class ImageSource(Source):
    """One split of an image folder: a list of files and their labels (or ``None``), decoded on demand."""

    def __init__(self, files: list[Path], labels: np.ndarray | None, owner: ImageFolder) -> None:
        self.files = files
        self.y = labels
        self.n = len(files)
        self.owner = owner

    def pieces(self, sel: Selection, rows: int, materialize: bool = False) -> Iterator[Batch]:
        """Decoded images, up to ``rows`` of one size per piece (a new piece starts where the size changes).

        ``arrays()`` (``materialize``) needs one size; statistics take images of any size. A piece holds at
        most the bytes of ``rows`` samples of the folder's first size (or one image, if that is larger).
        """
        index = as_index(sel, self.n)
        owner = self.owner
        budget = rows * owner.sample_nbytes
        # "auto": a bar while arrays() decodes everything; a consumer of iter_batches draws its own.
        show = owner.progress if owner.progress != "auto" or materialize else False
        x: np.ndarray | None = None
        picked: list[int] = []
        with Progress(total=len(index), desc=f"decoding images in {owner.root}", show=show) as bar:
            for pos, i in enumerate(index):
                img = owner.decode(self.files[i], any_size=not materialize)
                bar.update(1)
                if img is None:
                    continue
                if x is not None and (img.shape != x.shape[1:] or len(picked) == len(x)):
                    yield self._piece(x, picked)
                    x = None
                if x is None:
                    cap = min(rows, max(1, budget // max(1, img.nbytes)), len(index) - pos)
                    x, picked = np.empty((cap, *img.shape), dtype=owner.dtype), []
                x[len(picked)] = img
                picked.append(int(i))
            if x is not None:
                yield self._piece(x, picked)
        owner.report_skipped()

    def item(self, i: int) -> Batch | None:
        """One decoded image at its own size (or ``resize=``); a skipped file is a :class:`DatasetError`."""
        img = self.owner.decode(self.files[i], any_size=True)
        if img is None:
            why = self.owner.dataset.skipped[-1][1] if self.owner.dataset.skipped else "unreadable"
            raise DatasetError(
                f"{self.owner.name}: cannot read {self.owner._rel(self.files[i])}: {why}; expected a readable "
                "image (a map-style dataset cannot leave a sample out). Delete or replace the file."
            )
        return img, None if self.y is None else self.y[i]

    def _piece(self, x: np.ndarray, picked: list[int]) -> Batch:
        return x[: len(picked)], None if self.y is None else self.y[np.asarray(picked, dtype=np.int64)]

    def shard(self, sel: range | np.ndarray, rows: int, n: int, label: str) -> Shard:
        index = as_index(sel, self.n)  # ship only this shard's file names
        labels = None if self.y is None else self.y[index]
        piece = ImageSource([self.files[i] for i in index], labels, self.owner.for_shard())
        return _ImageShard(piece, None, rows, n, label)


class _ImageShard(Shard):
    """A group of image files; the files it skipped come back in ``skipped``."""

    def _read(self) -> Iterator[Batch]:
        sink = self.source.owner.dataset
        before = len(sink.skipped)
        yield from self.source.pieces(None, self.rows)
        self.skipped = list(sink.skipped[before:])


class _SkipSink:
    """Stands in for the dataset an image shard reports skipped files to."""

    def __init__(self) -> None:
        self.skipped: list = []


class ImageFolder:
    """Decoding policy shared by the splits of one folder: size, mode, resize and error handling."""

    def __init__(
        self,
        root: Path,
        name: str,
        resize: tuple[int, int] | None,
        on_error: str,
        color: str,
        progress: bool | str,
    ) -> None:
        self.root = root
        self.name = name
        self.color = color
        self.resize = resize
        self.on_error = on_error
        self.progress = progress
        self.shape = _Shape(resize, _COLORS[color], None)
        self.dtype = np.dtype(np.uint8)
        self.bits = 8  # bits per channel of every file, fixed by the first one
        self.dataset: LoadedDataset = None  # type: ignore[assignment]
        self._known_bad: set[str] = set()
        self._warned = 0

    @property
    def sample_nbytes(self) -> int:
        """Bytes of one image of the folder's size and mode (the first image's, or ``resize=``)."""
        h, w = self.shape.size  # type: ignore[misc]
        return h * w * _CHANNELS[self.shape.mode] * self.dtype.itemsize  # type: ignore[index]

    def for_shard(self) -> ImageFolder:
        """A copy of this policy that records skipped files in a list of its own (read by a shard)."""
        owner = copy.copy(self)
        owner.dataset, owner._known_bad, owner._warned = _SkipSink(), set(), 0  # type: ignore[assignment]
        return owner

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def _bad(self, path: Path, why: str) -> None:
        if self.on_error == "skip":
            if str(path) not in self._known_bad:
                self._known_bad.add(str(path))
                self.dataset.skipped.append((str(path), why))
            return
        raise DatasetError(
            f"{self.name}: cannot read {self._rel(path)}: {why}; expected a readable image. Delete or "
            "replace the file, or pass on_error='skip' (CLI: --on-error skip) to leave unreadable files out."
        )

    def report_skipped(self) -> None:
        """Warn once about the files skipped so far (again only if more are skipped later)."""
        skipped = self.dataset.skipped
        if len(skipped) > self._warned:
            self._warned = len(skipped)
            first = self._rel(Path(skipped[0][0]))
            warnings.warn(skipped_message(self.name, skipped, first), NormlabWarning, stacklevel=4)

    def probe(self, files: Sequence[Path]) -> None:
        """Fix the sample shape from the first readable file (header only, nothing is decoded)."""
        image = _pil()
        for path in files:
            try:
                with self._open(image, path) as im:
                    mode = _target_mode(im)
                    self.bits = 16 if mode == "I;16" else 8
                    if self.shape.mode is not None:
                        mode = self._chosen_mode(path)
                    if self.shape.size is None:
                        self.shape.size = (im.height, im.width)
                    self.shape.mode = mode
                    self.shape.fixed_by = path
                    self.dtype = np.dtype(np.uint16 if mode == "I;16" else np.uint8)
                    return
            except DatasetError:
                raise
            except Exception as exc:  # Pillow raises many types for bad files
                self._bad(path, _why(exc))
        raise DatasetError(
            f"{self.name}: none of the {len(files)} image files could be read; expected at least one readable "
            "image. See dataset.skipped for the reasons."
        )

    def _chosen_mode(self, path: Path) -> str:
        """The mode ``color=`` asks for, at the folder's bit depth (16-bit data is never cut to 8 bits)."""
        mode = self.shape.mode
        if self.bits == 16 and mode == "L":
            return "I;16"
        if self.bits == 16:
            raise DatasetError(
                f"{self.name}: {self._rel(path)} is a 16-bit grayscale image but color={self.color!r} asks for "
                "colour, which Pillow holds in 8 bits per channel (the values would be cut); expected "
                "color='auto' or 'gray' for 16-bit images. Leave color= out, or convert the files to 8 bits first."
            )
        return mode  # type: ignore[return-value]

    def _open(self, image: Any, path: Path) -> Any:
        if os.path.getsize(path) == 0:
            raise ValueError("the file is empty (zero bytes)")
        with warnings.catch_warnings():
            # Over Pillow's pixel limit: Pillow warns (and errors at twice the limit); both refuse here.
            warnings.simplefilter("error", image.DecompressionBombWarning)
            return image.open(path)

    def decode(self, path: Path, any_size: bool = False) -> np.ndarray | None:
        """Decode one file to ``(h, w, c)``; ``None`` when it was skipped.

        ``any_size``: keep the image's own size (statistics pool any sizes); otherwise every image must have
        the folder's size, or is resized to ``resize=``.
        """
        image = _pil()
        shape = self.shape
        try:
            with self._open(image, path) as im:
                size = (im.height, im.width)
                mode = _target_mode(im)
                if (16 if mode == "I;16" else 8) != self.bits:
                    raise DatasetError(
                        f"{self.name}: {self._rel(shape.fixed_by)} has {self.bits} bits per channel but "  # type: ignore[arg-type]
                        f"{self._rel(path)} has {24 - self.bits}; expected one bit depth for the whole folder "
                        "(mixing them would scale one kind wrongly). Convert the files to one depth, or keep "
                        "them in separate folders."
                    )
                if self.resize is None and size != shape.size and not any_size:
                    raise DatasetError(
                        f"{self.name}: images have different sizes: {self._rel(shape.fixed_by)} is "  # type: ignore[arg-type]
                        f"{shape.size[0]}x{shape.size[1]} (h x w) but {self._rel(path)} is {size[0]}x{size[1]}; "  # type: ignore[index]
                        f"expected one size for all. Pass resize=({shape.size[0]}, {shape.size[1]}) (CLI: "  # type: ignore[index]
                        f"--resize {shape.size[0]} {shape.size[1]}) to resize every image, or remove the odd files."  # type: ignore[index]
                    )
                if mode != shape.mode:
                    if (
                        shape.auto_mode
                        and shape.mode in ("L", "I;16")
                        and mode not in ("L", "I;16")
                    ):
                        raise DatasetError(
                            f"{self.name}: {self._rel(shape.fixed_by)} is grayscale but {self._rel(path)} is "  # type: ignore[arg-type]
                            f"colour (mode {im.mode}); expected one kind for all. Pass color='rgb' (CLI: "
                            "--color rgb) to read every image as RGB, or color='gray' to convert to grayscale."
                        )
                    im = im.convert(shape.mode)  # type: ignore[arg-type]
                elif im.mode != shape.mode:
                    im = im.convert(shape.mode)  # type: ignore[arg-type]
                if self.resize is not None and size != shape.size:
                    h, w = shape.size  # type: ignore[misc]
                    im = im.resize((w, h), resample=image.Resampling.BILINEAR)
                arr = np.asarray(im)
        except DatasetError:
            raise
        except Exception as exc:  # Pillow raises many types for bad files
            self._bad(path, _why(exc))
            return None
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return arr


def _why(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).strip() or name
    if name == "UnidentifiedImageError":
        return "not an image Pillow can identify (corrupt or not an image)"
    if name in ("DecompressionBombError", "DecompressionBombWarning"):
        return f"decompression bomb refused ({text})"
    if "truncated" in text.lower():
        return f"the image data is truncated ({text})"
    return text


def _normalize_resize(resize: Any, name: str) -> tuple[int, int] | None:
    if resize is None:
        return None
    try:
        h, w = (int(v) for v in resize)
        ok = h > 0 and w > 0 and all(float(v) == int(v) for v in resize)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise DatasetError(
            f"{name}: resize={brief(repr(resize), 60, quotes=False)} is not a size; expected (height, width) in "
            "pixels, e.g. resize=(32, 32)."
        )
    limit = _pil().MAX_IMAGE_PIXELS or _MAX_RESIZE_PIXELS
    if h * w > limit:
        raise DatasetError(
            f"{name}: resize=({h:,}, {w:,}) asks for {h * w:,} pixels per image, more than Pillow's limit of "
            f"{limit:,} (its decompression bomb guard); expected a size that fits, e.g. resize=(224, 224)."
        )
    return h, w


#: The resize limit when Pillow's pixel limit is switched off (``Image.MAX_IMAGE_PIXELS = None``).
_MAX_RESIZE_PIXELS = 2**28


def load_image_folder(
    kind: str,
    folder: Path,
    name: str,
    *,
    resize: Any = None,
    on_error: str = "raise",
    color: str = "auto",
    progress: bool | str = "auto",
    **options: Any,
) -> LoadedDataset:
    """Open a folder of images (see the module docstring for the layouts); ``kind`` is ``"images"``."""
    if on_error not in ("raise", "skip"):
        raise DatasetError(f"{name}: on_error={on_error!r}; expected 'raise' or 'skip'.")
    if color not in _COLORS:
        raise DatasetError(
            f"{name}: color={color!r}; expected one of 'auto', 'gray', 'rgb', 'rgba'."
        )
    _pil()
    policy = ImageFolder(folder, name, _normalize_resize(resize, name), on_error, color, progress)
    layouts, classes = _layouts(folder, name)
    total = sum(len(files) for files, _ in layouts.values())
    if total == 0:
        raise DatasetError(
            f"{name}: no image files in {folder} (extensions {', '.join(sorted(IMAGE_EXTENSIONS))}); expected "
            "one subfolder per class holding images, e.g. DIR/cat/001.jpg, DIR/dog/002.jpg."
        )
    sources: dict[str, Source] = {
        split: ImageSource(files, y, policy) for split, (files, y) in layouts.items()
    }
    dataset = LoadedDataset(
        kind=kind,
        name=name,
        sources=sources,
        sample_shape=(1, 1, 1),  # fixed below, once the first image has been probed
        dtype=np.uint8,
        n_classes=len(classes) if classes else None,
        class_names=classes if classes else None,
        **options,
    )
    policy.dataset = dataset
    first = next(files for files, _ in layouts.values() if files)
    policy.probe(first)
    h, w = policy.shape.size  # type: ignore[misc]
    dataset.sample_shape = (h, w, _CHANNELS[policy.shape.mode])  # type: ignore[index]
    dataset.dtype = policy.dtype
    return dataset


def _layouts(
    folder: Path, name: str
) -> tuple[dict[str, tuple[list[Path], np.ndarray | None]], list[str] | None]:
    """The files and labels of each split found in ``folder``, and the class names (``None``: unlabeled)."""
    subdirs = _subdirs(folder)
    split_dirs = [d for d in subdirs if d.name.lower() in _SPLIT_NAMES and _subdirs(d)]
    layouts: dict[str, tuple[list[Path], np.ndarray | None]] = {}
    classes: list[str] | None = None
    if split_dirs:
        others = [d.name for d in subdirs if d not in split_dirs]
        if others:
            raise DatasetError(
                f"{name}: {folder} holds split folders ({', '.join(d.name for d in split_dirs)}) and also "
                f"{', '.join(others)}; expected either split folders (DIR/train/<class>/...) or class folders "
                f"(DIR/<class>/...). Point the spec at one split, e.g. images:{split_dirs[0]}, or move the others."
            )
        for d in sorted(
            split_dirs, key=lambda d: _split_order(_SPLIT_CANON.get(d.name.lower(), d.name.lower()))
        ):
            split = _SPLIT_CANON.get(d.name.lower(), d.name.lower())
            if split in layouts:
                raise DatasetError(
                    f"{name}: two folders name the split {split!r} ({d.name} and another); expected one. Rename one."
                )
            split_classes = [c.name for c in _subdirs(d)]
            if classes is None:
                classes = split_classes
            elif split_classes != classes:
                raise DatasetError(
                    f"{name}: the split folders have different classes ({d.name}: {', '.join(split_classes[:5])}"
                    f"... vs {', '.join(classes[:5])}...); expected the same class subfolders in every split. "
                    "Add the missing (even empty) class folders."
                )
            layouts[split] = _labelled(d, classes)
    elif subdirs:
        classes = [d.name for d in subdirs]
        layouts["train"] = _labelled(folder, classes)
    else:
        layouts["train"] = (_direct_images(folder), None)
    return layouts, classes


def _split_order(split: str) -> tuple[int, str]:
    return (
        ("train", "validation", "test").index(split)
        if split in ("train", "validation", "test")
        else 3,
        split,
    )


def _labelled(folder: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    files: list[Path] = []
    labels: list[np.ndarray] = []
    for i, c in enumerate(classes):
        found = _image_files(folder / c) if (folder / c).is_dir() else []
        files += found
        labels.append(np.full(len(found), i, dtype=np.int64))
    y = np.concatenate(labels) if labels else np.empty(0, np.int64)
    return files, y


__all__ += ["ImageFolder", "ImageSource"]
