"""The three HCMoCo objectives as pure functions, and the sample-level memory bank."""
from .dense import (cell_coordinates, dense_contrast_loss, ordinal_soft_target,
                    sample_foreground_cells)
from .memory_bank import MemoryBank
from .sample import batch_contrast_loss, sample_contrast_loss
from .sparse import sparse_inter_loss, sparse_intra_loss

__all__ = [
    "cell_coordinates", "dense_contrast_loss", "ordinal_soft_target",
    "sample_foreground_cells", "MemoryBank", "batch_contrast_loss", "sample_contrast_loss", "sparse_inter_loss",
    "sparse_intra_loss",
]
