"""normlab for Keras 3: ``import normlab.keras`` (needs ``pip install 'normlab[keras]'``).

- ``normalizer.to_keras()`` / :func:`to_keras`: a fitted normalizer as a Keras layer (:class:`Normalization`
  or :class:`Rescaling`, Keras' own layers plus an input-scale guard, where they are exact, otherwise
  :class:`Normalize` or :class:`SampleNormalize`), saved inside ``model.save("model.keras")``;
- :func:`from_keras`: an adapted ``keras.layers.Normalization`` as a normlab normalizer.

Import this module before ``keras.saving.load_model`` so that Keras finds normlab's registered layers.
Every normalizer's ``fit`` also accepts a ``keras.utils.PyDataset``.
"""

from normlab.adapters.convert import from_keras as from_keras
from normlab.adapters.keras import Normalization as Normalization
from normlab.adapters.keras import Normalize as Normalize
from normlab.adapters.keras import Rescaling as Rescaling
from normlab.adapters.keras import SampleNormalize as SampleNormalize
from normlab.adapters.keras import to_keras as to_keras

__all__ = ["Normalization", "Normalize", "Rescaling", "SampleNormalize", "from_keras", "to_keras"]
