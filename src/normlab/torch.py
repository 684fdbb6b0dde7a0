"""normlab for PyTorch: ``import normlab.torch`` (needs ``pip install 'normlab[torch]'``).

- ``normalizer.to_torch()`` / :func:`to_torch`: a fitted normalizer as an ``nn.Module`` whose statistics
  are buffers, so ``torch.save`` and ``state_dict()`` carry them;
- :func:`dataset_stats`: the exact per-channel mean and std of a ``DataLoader`` or ``Dataset``;
- :class:`Normalize`, :class:`SampleNormalize`: the modules themselves.

Every normalizer's ``fit`` also accepts a ``DataLoader``, a ``Dataset`` or an ``IterableDataset``.
"""

from normlab.adapters.torch import MeanStd as MeanStd
from normlab.adapters.torch import Normalize as Normalize
from normlab.adapters.torch import SampleNormalize as SampleNormalize
from normlab.adapters.torch import dataset_stats as dataset_stats
from normlab.adapters.torch import to_torch as to_torch

__all__ = ["MeanStd", "Normalize", "SampleNormalize", "dataset_stats", "to_torch"]
