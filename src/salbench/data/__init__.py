"""Data sets: the registry, the item contract and the built-in sources (imported so they register)."""

from . import cifar10, shapes  # noqa: F401  (register cifar10, shapes, shapes_pair)
from . import coco2014, voc2007  # noqa: F401  (register coco2014, voc2007)
from . import cub200, image_folder, imagenet_val, imagenette  # noqa: F401  (register the same names)
from .base import DATASETS, DataSource, Items, create_dataset, list_datasets, register_dataset

__all__ = ["DATASETS", "DataSource", "Items", "create_dataset", "list_datasets", "register_dataset"]
