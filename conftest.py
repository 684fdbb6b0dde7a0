"""Doctest collection over src/: skip the modules of frameworks that are not installed."""

import importlib.util
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

collect_ignore = []
if importlib.util.find_spec("torch") is None:
    collect_ignore += ["src/normlab/adapters/torch.py", "src/normlab/torch.py"]
if importlib.util.find_spec("keras") is None or importlib.util.find_spec("sklearn") is None:
    collect_ignore += ["src/normlab/adapters/keras.py", "src/normlab/keras.py", "src/normlab/adapters/convert.py"]
