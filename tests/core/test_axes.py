import pytest

from normlab.core.axes import resolve_layout
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
