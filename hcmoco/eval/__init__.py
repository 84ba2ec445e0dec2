"""Metrics of the downstream tasks (pure functions on arrays; no training code).

The evaluation CLIs of this package (e.g. `python -m hcmoco.eval.retrieval`) are not imported
here, so importing a metric never pulls in the training stack.
"""
from .densepose import (DENSEPOSE_KAPPA, GPS_THRESHOLDS, PART_KAPPA_2019, accumulate, best_gps_per_person,
                        detection_mask, evaluate_densepose, gps, gt_mask, gt_points, match_image,
                        person_gps, sample_detection, similarity_matrices, summarize,
                        surface_distance)
from .pose3d import joint_errors_mm, map_at_10cm
from .segmentation import (IGNORE_INDEX, SegmentationMeter, confusion_matrix, mean_iou,
                           per_class_iou, pixel_accuracy)

__all__ = [
    "DENSEPOSE_KAPPA", "GPS_THRESHOLDS", "PART_KAPPA_2019", "accumulate", "best_gps_per_person", "detection_mask",
    "evaluate_densepose", "gps", "gt_mask", "gt_points", "match_image", "person_gps",
    "sample_detection", "similarity_matrices", "summarize", "surface_distance",
    "joint_errors_mm", "map_at_10cm",
    "IGNORE_INDEX", "SegmentationMeter", "confusion_matrix", "mean_iou", "per_class_iou",
    "pixel_accuracy",
]
