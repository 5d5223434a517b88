"""Datasets, transforms and loaders. Importing this package registers every dataset and
transform (each submodule is imported explicitly; no star imports)."""
from . import (ade20k, camvid, cityscapes, dataset, download, errors, io,  # noqa: F401
               list_file, loader, optic_disc_seg, pascal_voc, synthetic, transforms)
from .dataset import Dataset, SegDataset  # noqa: F401
from .errors import DataError  # noqa: F401
from .loader import (InfiniteShardedSampler, build_eval_loader,  # noqa: F401
                     build_train_loader, collate_train)
from .transforms import Compose, build_transforms  # noqa: F401
