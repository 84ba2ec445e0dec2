"""Downstream tasks of HCMoCo (METHOD.md 5): heads on the HRNet backbone, their losses and
decoding. Metrics live in hcmoco.eval; training loops elsewhere."""
from .a2j import (A2JHead, a2j_decode, a2j_loss, a2j_loss_terms, anchor_grid,
                  depth_pixel_ratio, person_depth_window, uvd_to_xyz_mm,
                  xyz_mm_to_uvd)
from .densepose import (NUM_PARTS, DensePoseHead, decode_iuv, densepose_loss,
                        densepose_loss_terms, iuv_to_uint8, split_iuv, point_targets)
from .segmentation import (IGNORE_INDEX, SegmentationHead, concat_branches, enet_class_weights,
                           label_counts, segmentation_loss)

__all__ = [
    "A2JHead", "a2j_decode", "a2j_loss", "a2j_loss_terms", "anchor_grid",
    "depth_pixel_ratio", "person_depth_window", "uvd_to_xyz_mm", "xyz_mm_to_uvd",
    "NUM_PARTS", "DensePoseHead", "decode_iuv", "densepose_loss", "densepose_loss_terms",
    "iuv_to_uint8", "point_targets", "split_iuv",
    "IGNORE_INDEX", "SegmentationHead", "concat_branches", "enet_class_weights", "label_counts",
    "segmentation_loss",
]
