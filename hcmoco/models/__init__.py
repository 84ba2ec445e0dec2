"""Encoders, heads and the HCMoCo builder (models return features; losses live elsewhere)."""
from .checkpoint import (HRNET_CLS_HEAD_PREFIXES, CheckpointMismatchError, backbone_state_dict,
                         load_backbone, read_backbone, save_backbone)
from .hcmoco import HCMoCo
from .heads import DenseHead, GlobalHead, KeypointGlobalHead, gather_joint_features
from .hrnet import HRNET_PRESETS, HRNet, HRNetConfig, count_parameters
from .pretrained import MODEL_FILE, build_model, load_pretrained
from .semgcn import SemGCN, SemGraphConv, adjacency_from_edges

__all__ = [
    "HRNET_CLS_HEAD_PREFIXES", "CheckpointMismatchError", "backbone_state_dict",
    "load_backbone", "read_backbone", "save_backbone",
    "HCMoCo", "DenseHead", "GlobalHead", "KeypointGlobalHead",
    "gather_joint_features", "HRNET_PRESETS", "HRNet", "HRNetConfig", "count_parameters",
    "SemGCN", "SemGraphConv", "adjacency_from_edges", "MODEL_FILE", "build_model", "load_pretrained",
]
