"""Constants and a lookup the check tests share."""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
#: keras.applications' Caffe-style preprocess_input: BGR channels minus ImageNet's mean on 0..255 pixels.
CAFFE_BGR = np.array([103.939, 116.779, 123.68])


def one(report, code):
    """The single finding with ``code`` (the report is shown when there is not exactly one)."""
    found = report.by_code(code)
    assert len(found) == 1, report.to_text()
    return found[0]
