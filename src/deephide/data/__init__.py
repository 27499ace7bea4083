"""Data layer: ImageSet, named loaders, storage formats and the dataset-spec notation.

A dataset spec is ``LOADER[:PATH][?key=value&...]`` (``fashion-mnist``, ``cifar10:/data/cifar``,
``folder:/imgs?size=64&classes=100``) or the path of a stored ImageSet, PNG folder or npz file.
"""

from .imageset import ImageSet
from .registry import DATASETS, load_dataset, parse_spec
from .formats import load_any
from .interop.avatar_npz import export_avatar_npz, import_avatar_npz
from .interop.class_folders import export_class_folders
from .interop.png_folder import export_png_folder, import_png_folder
from .stored import load_imageset, save_imageset

from . import loaders as _loaders  # noqa: F401  (fills DATASETS)
from . import image_folder as _image_folder  # noqa: F401  (the folder loader)
from . import photo_crops as _photo_crops  # noqa: F401  (the photo-crops loader)

__all__ = [
    "ImageSet", "DATASETS", "load_dataset", "parse_spec",
    "save_imageset", "load_imageset", "load_any",
    "export_png_folder", "import_png_folder", "export_avatar_npz", "import_avatar_npz",
    "export_class_folders",
]
