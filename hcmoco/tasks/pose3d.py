"""3D pose estimation from depth (docs/METHOD.md 5): the A2J head (hcmoco.tasks.a2j) on person crops
of depth maps with background (domain synth_itop by default); mAP@10cm (mean of per-joint
accuracies) with the mean joint error as the tiebreak (hcmoco.eval.pose3d).

The input is built from the depth map alone (`pose3d_inputs`); the joints only enter the targets
(`pose3d_targets`): the public ITOP code cleared the background with ground-truth joint depths,
which leaks the answer into the test input.
"""
from __future__ import annotations

import numpy as np
import torch

from hcmoco.eval import map_at_10cm
from hcmoco.tasks.a2j import (A2JHead, a2j_decode, a2j_loss, depth_pixel_ratio, person_depth_window, uvd_to_xyz_mm,
                              xyz_mm_to_uvd)
from hcmoco.tasks.base import Task, outputs

# person_depth_window's window [z_ref - 0.6 m, z_ref + 0.8 m]: half of it sets A2J's depth scale
DEPTH_HALF_WINDOW_M = 0.7


def pose3d_inputs(depth_mm: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """(B, H, W) uint16 depth with background -> ((B, 3, H, W) input, (B,) z_ref metres).

    Per sample the background is cleared by `person_depth_window` (from the image alone) and the
    remaining depths are given in metres relative to the person's reference depth z_ref (the
    depth targets' origin too), 0 where there is no reading; replicated to 3 channels.
    """
    cleared, z_ref = zip(*(person_depth_window(d) for d in np.asarray(depth_mm)))
    metres = np.stack(cleared).astype(np.float32) / 1000.0
    z_ref = np.asarray(z_ref, np.float32)
    centred = np.where(metres > 0, metres - z_ref[:, None, None], 0.0).astype(np.float32)
    return torch.from_numpy(np.repeat(centred[:, None], 3, axis=1)), z_ref


def pose3d_targets(kp3d_mm: np.ndarray, cam: np.ndarray, z_ref: np.ndarray) -> dict[str, torch.Tensor]:
    """A2J targets: joints projected to crop pixels (the crop is the image), depth in metres
    relative to z_ref; plus what evaluation needs (kp3d mm, intrinsics, z_ref)."""
    kp3d = np.asarray(kp3d_mm, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv, z = xyz_mm_to_uvd(kp3d, np.asarray(cam, np.float32))
    valid = kp3d[..., 2] > 0  # ITOP's is_valid; SynthHuman knows every joint
    return {"target_xy": torch.from_numpy(np.where(valid[..., None], uv, 0.0).astype(np.float32)),
            "target_depth": torch.from_numpy(np.where(valid, z - z_ref[:, None], 0.0).astype(np.float32)),
            "visible": torch.from_numpy(valid), "kp3d": torch.from_numpy(kp3d),
            "cam": torch.from_numpy(np.asarray(cam, np.float32)), "z_ref": torch.from_numpy(z_ref)}


def decode_joints(out: dict, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """A2J output -> (joints (B, J, 2) image pixels, (B, J, 3) camera mm); the crop is the image."""
    xy, d = a2j_decode(out)
    xy = xy.cpu()
    return xy, uvd_to_xyz_mm(xy, batch["z_ref"][:, None] + d.cpu(), batch["cam"])


class Pose3D(Task):
    name, title, modality = "pose3d", "3D pose estimation from depth", "depth"
    fields = ("depth", "cam", "kp3d")
    metrics = (("map_10cm", "mAP@10cm"),)
    prediction_keys = ("kp3d", "kp2d")
    frozen_head = "the A2J head"
    dense = False

    def batch(self, arrays, with_input=True):
        x, z_ref = pose3d_inputs(arrays["depth"])  # z_ref, a target's origin, comes with the input
        return {"input": x, **pose3d_targets(arrays["kp3d"], arrays["cam"], z_ref)}

    def head(self, widths, cfg, resolution, num_joints):
        return A2JHead(widths, num_joints, depth_scale=depth_pixel_ratio(resolution, DEPTH_HALF_WINDOW_M),
                       channels=cfg["a2j_channels"], num_convs=cfg["a2j_convs"])

    def forward(self, head, feats, size):
        return head(feats)

    def loss(self, head, out, batch, cfg, class_weights):
        return a2j_loss(out, batch["target_xy"], batch["target_depth"], batch["visible"], head.depth_scale)

    def evaluate(self, model, data, indices, *, device, batch_size, precision, full, miou, densepose_box_ignore):
        pred, gt, vis = [], [], []
        for _, batch, out in outputs(model, data, indices, batch_size, device, precision):
            pred.append(decode_joints(out, batch)[1])
            gt.append(batch["kp3d"])
            vis.append(batch["visible"])
        m = map_at_10cm(torch.cat(pred), torch.cat(gt), visible=torch.cat(vis))
        joints = data.split.index.get("joints") or [str(j) for j in range(len(m["per_joint"]))]
        return {"value": m["map"], "tiebreak": -m["mean_error_mm"], "mean_error_mm": m["mean_error_mm"],
                "per_joint": dict(zip(joints, m["per_joint"].tolist())),
                "per_joint_error_mm": dict(zip(joints, m["per_joint_error_mm"].tolist()))}

    def drawable(self, out, batch):
        xy, xyz = decode_joints(out, batch)
        return {"kp3d": xyz.numpy().astype(np.float32), "kp2d": xy.numpy().astype(np.float32)}

    def draw(self, ax, sample, shown, palette, edges):
        from hcmoco.processed.preview import draw_keypoints

        self.draw_input(ax, sample)
        if shown is None:
            xy = _truth_joints(sample)
        else:  # every predicted joint is drawn
            xy = np.concatenate([shown["kp2d"], np.full((len(shown["kp2d"]), 1), 2.0)], 1)
        draw_keypoints(ax, xy, edges)


def _truth_joints(sample: dict) -> np.ndarray:
    """Ground-truth joints (J, 3) = (x, y, visibility) projected as the A2J targets are, so they
    sit where a perfect prediction would; a joint without depth (ITOP's invalid) is not drawn."""
    kp3d = np.asarray(sample["kp3d"], np.float64)
    valid = kp3d[:, 2] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        xy, _ = xyz_mm_to_uvd(kp3d, np.asarray(sample["cam"], np.float64))
    return np.concatenate([np.where(valid[:, None], xy, 0.0), np.where(valid, 2.0, 0.0)[:, None]], 1)


TASK = Pose3D()
