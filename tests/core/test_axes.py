import numpy as np
import pytest

from normlab.core.axes import (
    STATEFUL_MODES,
    axis_names,
    channel_count,
    describe_layout,
    distinct_keep_axes,
    effective_per,
    entry_counts,
    resolve_layout,
    with_channel_axis,
)
from normlab.errors import LayoutError


@pytest.mark.parametrize(
    ("per", "shape", "channel_axis", "reduce", "keep", "stat"),
    [
        ("global", (8, 4, 4, 3), -1, (0, 1, 2, 3), (), ()),
        ("channel", (8, 4, 4, 3), -1, (0, 1, 2), (3,), (3,)),
        ("channel", (8, 3, 4, 4), 1, (0, 2, 3), (1,), (3,)),
        ("feature", (8, 4, 4, 3), -1, (0,), (1, 2, 3), (4, 4, 3)),
        ("sample", (8, 4, 4, 3), -1, (1, 2, 3), (0,), ()),
        ("sample-channel", (8, 4, 4, 3), -1, (1, 2), (0, 3), (3,)),
        ("auto", (8, 5), -1, (0,), (1,), (5,)),
        ("auto", (8, 4, 4, 3), -1, (0, 1, 2), (3,), (3,)),
    ],
)
def test_per_modes_name_their_axes(per, shape, channel_axis, reduce, keep, stat):
    lay = resolve_layout(per, shape, channel_axis)
    assert lay.reduce_axes == reduce
    assert lay.keep_axes == keep
    assert lay.stat_shape == stat
    assert set(lay.reduce_axes) | set(lay.keep_axes) == set(range(len(shape)))


def test_as_3d_is_a_view_for_contiguous_input():
    import numpy as np

    x = np.zeros((6, 5, 4, 3), np.uint8)
    for per, ax, expect in [("channel", -1, (120, 3, 1)), ("feature", -1, (6, 60, 1)), ("global", -1, (360, 1, 1))]:
        v = resolve_layout(per, x.shape, ax).as_3d(x)
        assert v.shape == expect and np.shares_memory(v, x)
    first = np.zeros((6, 3, 5, 4), np.uint8)
    assert resolve_layout("channel", first.shape, 1).as_3d(first).shape == (6, 3, 20)


def test_unknown_mode_lists_the_valid_ones():
    with pytest.raises(LayoutError, match="expected one of 'auto', 'global', 'channel'"):
        resolve_layout("channels", (4, 3))


def test_channel_axis_zero_is_the_sample_axis():
    with pytest.raises(LayoutError, match="axis 0 holds the samples"):
        resolve_layout("channel", (4, 3, 8, 8), channel_axis=0)


def test_one_dimensional_input_says_how_to_reshape():
    with pytest.raises(LayoutError, match=r"x.reshape\(-1, 1\)"):
        resolve_layout("auto", (10,))


@pytest.mark.parametrize(
    ("sample_shape", "channel_axis", "expected"),
    [
        ((28, 28), -1, (28, 28, 1)),  # keras.datasets.mnist: (n, h, w)
        ((28, 4), -1, (28, 4)),  # 4 entries can be RGBA channels
        ((28, 28), 1, (28, 28)),  # the user said where the channels are
        ((28, 28, 1), -1, (28, 28, 1)),
        ((30,), -1, (30,)),
    ],
)
def test_only_a_grayscale_stack_gets_a_channel_axis(sample_shape, channel_axis, expected):
    assert with_channel_axis(sample_shape, channel_axis) == expected


@pytest.mark.parametrize(
    ("sample_shape", "channel_axis"),
    [((32, 32, 3), -1), ((32, 32, 3), 3), ((3, 32, 32), 1), ((28, 28, 1), -1), ((5, 2), -1), ((7,), -1)],
)
def test_entry_counts_are_the_sizes_of_the_fitted_statistics(sample_shape, channel_axis):
    counts = entry_counts(sample_shape, channel_axis)
    assert tuple(counts) == STATEFUL_MODES
    for per, n in counts.items():
        lay = resolve_layout(per, (2, *sample_shape), channel_axis)
        assert n == int(np.prod(lay.stat_shape)), per
    assert counts["channel"] == channel_count(sample_shape, channel_axis)
    assert "channel" not in entry_counts(sample_shape, channel_axis, channels=False)


def test_effective_per_is_auto_except_that_one_channel_is_global():
    assert effective_per((32, 32, 3)) == resolve_layout("auto", (1, 32, 32, 3)).per == "channel"
    assert effective_per((3, 32, 32), 1) == "channel"
    assert effective_per((28, 28, 1)) == "global"
    assert effective_per((1, 28, 28), 1) == "global"
    assert effective_per((30,)) == "feature"
    assert effective_per(()) == "global"


@pytest.mark.parametrize("shape", [(10, 28, 28, 1), (10, 32, 32, 3), (10, 3, 32, 32), (10, 30), (10, 1, 5)])
def test_distinct_keep_axes_name_each_grouping_of_values_once(shape):
    channel_axis = 1 if shape[1] == 3 else -1
    modes = distinct_keep_axes(shape, channel_axis)
    assert len(set(modes.values())) == len(modes)
    for per, keep in modes.items():
        lay = resolve_layout(per, shape, channel_axis)
        assert keep == tuple(a for a in lay.keep_axes if shape[a] > 1)
    no_channels = distinct_keep_axes(shape, channel_axis, channels=False)
    assert "channel" not in no_channels and "sample-channel" not in no_channels


@pytest.mark.parametrize(("ndim", "channel_axis"), [(2, -1), (3, -1), (4, -1), (4, 1), (5, -1)])
def test_axis_names_are_the_names_describe_layout_writes(ndim, channel_axis):
    names = axis_names(ndim, channel_axis)
    assert len(names) == ndim and names[0] == "n"
    assert "(" + ", ".join(names) + ")" == describe_layout(ndim, channel_axis)
