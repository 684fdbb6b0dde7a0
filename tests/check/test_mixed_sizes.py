"""Image folders whose images differ in size: pooled per-channel statistics, exact, in stats and check alike."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

import normlab
import normlab.data
from normlab.cli.main import main

SIZES = [(20, 30), (32, 32), (17, 41), (25, 25), (9, 64)]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Five PNGs of different sizes, each channel with its own level, and the images as arrays."""
    from PIL import Image

    d = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(7)
    images = []
    for i, (h, w) in enumerate(SIZES):
        x = rng.integers(0, 200, (h, w, 3), dtype=np.uint8) + np.array([0, 25, 55], np.uint8)
        Image.fromarray(x).save(d / f"im{i}.png")
        images.append(x)
    return f"images:{d}", images


def _exact(images, c):
    vals = [int(v) for x in images for v in x[..., c].ravel()]
    n = len(vals)
    mean = Fraction(sum(vals), n)
    var = Fraction(sum(v * v for v in vals), n) - mean * mean
    return n, mean, var


def test_stats_pool_the_pixels_exactly_and_say_the_sizes_differ(mixed, tmp_path):
    spec, images = mixed
    s = normlab.stats(normlab.data.open(spec))
    assert s.sample_shape == (None, None, 3) and s.mixed_sizes
    assert "images of mixed sizes (3 channels)" in s.table()
    for c in range(3):
        n, mean, var = _exact(images, c)
        assert s.count[c] == n
        assert s.mean[c] == float(mean) and s.var[c] == pytest.approx(float(var), rel=1e-15)
    out = tmp_path / "mixed.stats.json"
    assert main(["stats", spec, "--out", str(out)]) == 0
    back = normlab.load(out)
    assert back.sample_shape == (None, None, 3)
    norm = back.to_normalizer("standardize")
    np.testing.assert_array_equal(norm.mean_, s.mean)


def test_check_reads_a_mixed_folder_per_channel_and_refuses_per_feature(mixed, capsys):
    spec, _ = mixed
    code = main(["check", spec, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert "raw-pixels" in json.dumps(doc) or doc["findings"], doc  # unnormalized uint8: a finding is expected
    assert main(["check", spec, "--per", "feature"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "mixed sizes" in err and "--resize" in err
    assert "Traceback" not in err
