"""Data tricks: scaling fitted on training data, honest splits, imbalanced
classes, keyed augmentation, batching, and the datasets (the embedded digits,
MNIST-1D generated locally, MNIST IDX files)."""

from ._augment import affine_transform as affine_transform
from ._augment import random_affine as random_affine
from ._augment import random_rotate as random_rotate
from ._augment import random_shift as random_shift
from ._augment import random_zoom as random_zoom
from ._batching import batches as batches
from ._batching import num_batches as num_batches
from ._datasets import IdxFormatError as IdxFormatError
from ._datasets import Split as Split
from ._datasets import load_digits as load_digits
from ._datasets import load_mnist_idx as load_mnist_idx
from ._datasets import load_split as load_split
from ._datasets import read_idx as read_idx
from ._mnist1d import load_mnist1d as load_mnist1d
from ._sampling import balanced_sample as balanced_sample
from ._sampling import class_weights as class_weights
from ._sampling import oversample as oversample
from ._sampling import undersample as undersample
from ._scaling import MinMaxScaler as MinMaxScaler
from ._scaling import StandardScaler as StandardScaler
from ._scaling import minmax_scale as minmax_scale
from ._scaling import standardize as standardize
from ._split import split as split

__all__ = [
    "IdxFormatError",
    "MinMaxScaler",
    "Split",
    "StandardScaler",
    "affine_transform",
    "balanced_sample",
    "batches",
    "class_weights",
    "load_digits",
    "load_mnist1d",
    "load_mnist_idx",
    "load_split",
    "num_batches",
    "oversample",
    "random_affine",
    "random_rotate",
    "random_shift",
    "random_zoom",
    "read_idx",
    "split",
    "minmax_scale",
    "standardize",
    "undersample",
]


# Every NamedTuple here serializes with jax.export (jtricks/_export.py).
from jtricks._export import register_namedtuples as _register_namedtuples  # noqa: E402

_register_namedtuples(__name__)
