"""Data layer: ImageSet, named loaders, storage formats and the dataset-spec notation.

A dataset spec is ``LOADER[:PATH][?key=value&...]`` (``fashion-mnist``, ``cifar10:/data/cifar``,
``folder:/imgs?size=64&classes=100``) or the path of a stored ImageSet, PNG folder or npz file.
"""

from .imageset import ImageSet
from .registry import DATASETS, load_dataset, parse_spec

from . import loaders as _loaders  # noqa: F401  (fills DATASETS)

__all__ = ["ImageSet", "DATASETS", "load_dataset", "parse_spec"]
