"""HCMoCo model builder: RGB and depth HRNetV2 encoders, a SemGCN keypoint encoder and the
projection heads. Like MoCo's builder it returns embeddings only; the objectives live in
`hcmoco.losses` and the memory bank in `hcmoco.losses.memory_bank`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hcmoco.precision import at_least_float32

from .heads import DenseHead, GlobalHead, KeypointGlobalHead, gather_joint_features
from .hrnet import HRNet, HRNetConfig
from .semgcn import SemGCN

class HCMoCo(nn.Module):
    """Three encoders + heads.

    backbone: HRNet preset name ("w18", "narrow") or an HRNetConfig, used for RGB and depth
        (two separate networks). Depth arrives replicated to 3 channels (docs/METHOD.md section 1).
    num_joints, edges: the skeleton graph of the keypoint encoder.
    """

    def __init__(self, backbone: HRNetConfig | str, num_joints: int,
                 edges: Sequence[tuple[int, int]], embed_dim: int = 128,
                 gcn_hidden: int = 128, gcn_blocks: int = 4):
        super().__init__()
        cfg = HRNetConfig.preset(backbone) if isinstance(backbone, str) else backbone
        self.backbone_config = cfg
        self.rgb_encoder = HRNet(cfg)
        self.depth_encoder = HRNet(cfg)
        self.keypoint_encoder = SemGCN(num_joints, edges, 2, gcn_hidden, embed_dim, gcn_blocks)
        self.rgb_global = GlobalHead(cfg.widths, embed_dim)
        self.depth_global = GlobalHead(cfg.widths, embed_dim)
        self.keypoint_global = KeypointGlobalHead(embed_dim, embed_dim)
        self.rgb_dense = DenseHead(cfg.widths, embed_dim)
        self.depth_dense = DenseHead(cfg.widths, embed_dim)

    def backbone(self, modality: str) -> HRNet:
        if modality not in ("rgb", "depth"):
            raise ValueError(f"no image backbone for modality {modality!r}")
        return self.rgb_encoder if modality == "rgb" else self.depth_encoder

    def _depth_branches(self, depth: Tensor, has_depth: Tensor | None) -> list[Tensor] | None:
        """Run the depth encoder only on samples that have depth, so zero maps of keypoint-only
        samples neither cost compute nor enter BatchNorm statistics; their rows are zeros."""
        if has_depth is None:
            return self.depth_encoder(depth)
        idx = has_depth.nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            return None
        feats = self.depth_encoder(depth.index_select(0, idx))
        b = depth.shape[0]
        return [f.new_zeros((b,) + f.shape[1:]).index_copy(0, idx, f) for f in feats]

    def forward(self, rgb: Tensor, depth: Tensor, keypoints: Tensor, visible: Tensor,
                has_depth: Tensor | None = None, joint_cells: Tensor | None = None,
                dense: bool = False) -> dict[str, Tensor]:
        """rgb, depth: (B, 3, H, W); keypoints: (B, J, 2) in [-1, 1]; visible: (B, J) bool;
        has_depth: (B,) bool or None (= all); joint_cells: (B, J, 2) integer (x, y) on the
        H/4 x W/4 grid, needed for the joint features; dense: compute the stage-2 outputs.

        Returns (all L2-normalised along the feature axis, D = embed_dim):
          g_rgb, g_depth, g_kp: (B, D) global embeddings (g_depth zero where has_depth = 0),
          h_kp: (B, J, D) per-joint keypoint embeddings,
          f_rgb, f_depth: (B, D, H/4, W/4) dense maps              [dense only]
          j_rgb, j_depth: (B, J, D) dense features at the joint cells [dense and joint_cells]
        """
        b = rgb.shape[0]
        fr = self.rgb_encoder(rgb)
        fd = self._depth_branches(depth, has_depth)
        h = self.keypoint_encoder(keypoints)
        out = {"g_rgb": self.rgb_global(fr), "g_kp": self.keypoint_global(h, visible),
               "h_kp": F.normalize(at_least_float32(h), dim=-1)}
        d = out["g_rgb"].shape[1]
        out["g_depth"] = self.depth_global(fd) if fd is not None else out["g_rgb"].new_zeros(b, d)
        if dense:
            out["f_rgb"] = self.rgb_dense(fr)
            out["f_depth"] = (self.depth_dense(fd) if fd is not None
                              else torch.zeros_like(out["f_rgb"]))
            if has_depth is not None:  # the head's bias would make zero rows non-zero
                out["f_depth"] = out["f_depth"] * has_depth.view(-1, 1, 1, 1)
            if joint_cells is not None:
                out["j_rgb"] = gather_joint_features(out["f_rgb"], joint_cells)
                out["j_depth"] = gather_joint_features(out["f_depth"], joint_cells)
        if has_depth is not None and fd is not None:
            out["g_depth"] = out["g_depth"] * has_depth.view(-1, 1)
        return out
