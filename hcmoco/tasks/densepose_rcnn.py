"""DensePose R-CNN on the HRNet backbone for DensePose on whole images (DensePose-COCO).

torchvision's Faster R-CNN (RPN + box head) over a feature pyramid built from the 4 HRNet
branches, plus a DensePose RoI head, as DensePose R-CNN (Guler et al. 2018; detectron2
projects/DensePose, `DensePoseV1ConvXHead`, `DensePoseChartPredictor`, `DensePoseChartLoss`):
- neck "hrfpn" (the paper's HRFPN, HRNetV2p): branches upsampled to stride 4, concatenated,
  1x1 conv, average-pooled to strides 4..64, a 3x3 conv per level; or "fpn":
  torchvision's FeaturePyramidNetwork + max-pool level (as `BackboneWithFPN`).
- DensePose RoI head: MultiScaleRoIAlign (roi_resolution, 14) on the levels of stride 4..32,
  `head_convs` 3x3 conv + ReLU (8 x 512), a 4x4 stride-2 deconv per output and a bilinear x2:
  part logits (25: background + 24 parts), U and V (one chart per part, 24) on a
  4 * roi_resolution square (56) over the box.
- Training RoIs: the box head's sampled positives whose IoU with their ground truth is > 0.7
  and whose ground truth has DensePose points (detectron2 `DensePoseDataFilter`).
- Losses at the annotated points (COCO convention: dp_x, dp_y in 0..255 over the ground-truth
  box, image x = x0 + dp_x / 255 * w, as hcmoco.eval.densepose), sampled by bilinear
  interpolation of the head outputs; points outside the RoI are dropped:
      loss_densepose_I = part_weight * mean CE(part logits, dp_I)
      loss_densepose_U = point_weight * sum SmoothL1(U_{dp_I} - dp_U) over points with dp_I > 0
  (V likewise; part_weight 1, point_weight 0.01 as detectron2). The coarse body-mask loss of
  detectron2 (dp_masks) is not included.

Targets, per image: "boxes" (N, 4) x0, y0, x1, y1 float, "labels" (N,) int64 and "dp_x",
"dp_y", "dp_I", "dp_U", "dp_V": N sequences (one per box, empty without points).
Eval output, per image: "boxes" (K, 4), "scores", "labels", the raw head outputs "dp_part"
(K, 25, S, S), "dp_u", "dp_v" (K, 24, S, S) and "dp_iuv" (K, S, S, 3) float (I, U, V over the box).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from hcmoco.errors import HcmocoError
from hcmoco.models.hrnet import HRNet
from hcmoco.tasks.densepose import NUM_PARTS, decode_iuv, iuv_to_uint8

DP_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
DP_SCALE = 255.0  # dp_x, dp_y run over 0..255 across the ground-truth box
LEVELS = ("0", "1", "2", "3", "pool")  # strides 4, 8, 16, 32, 64


class HRFPN(nn.Module):
    """forward(4 branch maps) -> 5 maps of `out_channels` at strides 4..64 (HRNetV2p)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_levels: int = 5):
        super().__init__()
        self.reduce = nn.Conv2d(sum(in_channels), out_channels, 1)
        self.convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                   for _ in range(num_levels))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        size = feats[0].shape[-2:]
        x = torch.cat([feats[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                                    for f in feats[1:]], 1)
        x = self.reduce(x)
        # ceil_mode: a small image still gets a (1 x 1) map at every level
        return [conv(x if i == 0 else F.avg_pool2d(x, 2 ** i, 2 ** i, ceil_mode=True))
                for i, conv in enumerate(self.convs)]


class HRNetPyramid(nn.Module):
    """HRNet + neck as a torchvision detection backbone: forward(x) -> OrderedDict of LEVELS."""

    def __init__(self, body: HRNet, neck: str = "hrfpn", out_channels: int = 256):
        super().__init__()
        self.body, self.neck_name, self.out_channels = body, neck, out_channels
        widths = list(body.out_channels)
        if neck == "hrfpn":
            self.neck = HRFPN(widths, out_channels, len(LEVELS))
        elif neck == "fpn":
            self.neck = FeaturePyramidNetwork(widths, out_channels, extra_blocks=LastLevelMaxPool())
        else:
            raise HcmocoError(f"neck must be 'hrfpn' or 'fpn', got {neck!r}")

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        feats = self.body(x)
        if self.neck_name == "fpn":
            return self.neck(OrderedDict(zip(LEVELS, feats)))
        return OrderedDict(zip(LEVELS, self.neck(feats)))


class DensePoseRoIHead(nn.Module):
    """(R, C, r, r) pooled features -> {"part": (R, 25, 4r, 4r), "u", "v": (R, 24, 4r, 4r)}."""

    def __init__(self, in_channels: int, convs: int = 8, channels: int = 512, up_scale: int = 2):
        super().__init__()
        layers = []
        for i in range(convs):
            layers += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1),
                       nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        c = channels if convs else in_channels
        self.part = nn.ConvTranspose2d(c, NUM_PARTS + 1, 4, stride=2, padding=1)
        self.u = nn.ConvTranspose2d(c, NUM_PARTS, 4, stride=2, padding=1)
        self.v = nn.ConvTranspose2d(c, NUM_PARTS, 4, stride=2, padding=1)
        self.up_scale = up_scale
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.convs(x)
        out = {k: getattr(self, k)(x) for k in ("part", "u", "v")}
        if self.up_scale != 1:
            out = {k: F.interpolate(t, scale_factor=self.up_scale, mode="bilinear", align_corners=False)
                   for k, t in out.items()}
        return out


def _axis_grid(v_norm: Tensor, gt0: Tensor, gt_size: Tensor, roi0: Tensor, roi_size: Tensor, size: int):
    """Bilinear taps along one axis (detectron2 `_linear_interpolation_utilities`): point at
    gt0 + v_norm / 255 * gt_size -> low / high cells of a `size` grid over the RoI, the weight of
    the high cell, and whether the point lies inside the RoI."""
    v = gt0 + v_norm * gt_size / DP_SCALE
    inside = (v >= roi0) & (v < roi0 + roi_size)
    g = (v - roi0) * size / roi_size
    lo = g.floor().long().clamp(0, size - 1)
    hi = (lo + 1).clamp(max=size - 1)
    return lo, hi, torch.minimum(hi.to(g.dtype), g) - lo.to(g.dtype), inside


def sample_at_points(z: Tensor, roi: Tensor, taps_x, taps_y) -> Tensor:
    """(R, C, S, S) maps at P points of RoIs `roi` -> (P, C) by bilinear interpolation."""
    (x0, x1, wx, _), (y0, y1, wy, _) = taps_x, taps_y
    wx, wy = wx[:, None], wy[:, None]
    return (z[roi, :, y0, x0] * (1 - wx) * (1 - wy) + z[roi, :, y0, x1] * wx * (1 - wy)
            + z[roi, :, y1, x0] * (1 - wx) * wy + z[roi, :, y1, x1] * wx * wy)


def densepose_point_losses(out: dict[str, Tensor], rois: Tensor, gt_boxes: Tensor,
                           points: dict[str, Tensor], part_weight: float = 1.0,
                           point_weight: float = 0.01) -> dict[str, Tensor]:
    """DensePose losses at annotated points (see the module docstring).
    out: head outputs over R RoIs; rois, gt_boxes: (R, 4) x0, y0, x1, y1 (the RoI and its
    ground truth); points: flat (P,) "roi" (index into R), "x", "y" (0..255 over the ground
    truth box), "I", "U", "V"."""
    zero = {f"loss_densepose_{k}": out[n].sum() * 0.0
            for k, n in (("I", "part"), ("U", "u"), ("V", "v"))}
    if points["roi"].numel() == 0:
        return zero
    r = points["roi"]
    g, b = gt_boxes[r], rois[r]
    size = out["part"].shape[-1]
    tx = _axis_grid(points["x"], g[:, 0], g[:, 2] - g[:, 0], b[:, 0], b[:, 2] - b[:, 0], size)
    ty = _axis_grid(points["y"], g[:, 1], g[:, 3] - g[:, 1], b[:, 1], b[:, 3] - b[:, 1], size)
    valid = tx[3] & ty[3]
    if not valid.any():
        return zero
    r, part = r[valid], points["I"][valid].long()
    tx, ty = (tuple(a[valid] for a in t) for t in (tx, ty))
    part_logits = sample_at_points(out["part"], r, tx, ty)
    losses = {"loss_densepose_I": part_weight * F.cross_entropy(part_logits, part)}
    fg = part > 0
    tx, ty = (tuple(a[fg] for a in t) for t in (tx, ty))
    for key, name in (("U", "u"), ("V", "v")):
        if not fg.any():
            losses[f"loss_densepose_{key}"] = zero[f"loss_densepose_{key}"]
            continue
        est = sample_at_points(out[name], r[fg], tx, ty).gather(1, (part[fg] - 1)[:, None]).squeeze(1)
        target = points[key][valid][fg].to(est.dtype)
        losses[f"loss_densepose_{key}"] = point_weight * F.smooth_l1_loss(est, target, reduction="sum")
    return losses


def _pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of box a[i] with b[i] (x0, y0, x1, y1)."""
    wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-12)


def check_densepose_targets(targets: Sequence[dict]) -> None:
    """One point sequence per box for each dp_* key, of equal lengths per box."""
    for n, t in enumerate(targets):
        count = len(t["boxes"])
        for key in DP_KEYS:
            if key not in t:
                raise HcmocoError(f"targets[{n}]: missing {key!r} (one point sequence per box)")
            if len(t[key]) != count:
                raise HcmocoError(f"targets[{n}][{key!r}]: {len(t[key])} sequences for {count} boxes")
        for m, x in enumerate(t["dp_x"]):
            if any(len(t[k][m]) != len(x) for k in DP_KEYS):
                raise HcmocoError(f"targets[{n}]: box {m} has dp_* sequences of different lengths")


class DensePoseRoIHeads(RoIHeads):
    """torchvision's RoIHeads (box branch unchanged) plus the DensePose branch."""

    def __init__(self, *args, densepose_roi_pool: MultiScaleRoIAlign, densepose_head: DensePoseRoIHead,
                 densepose_fg_iou_thresh: float = 0.7, part_weight: float = 1.0,
                 point_weight: float = 0.01, **kwargs):
        super().__init__(*args, **kwargs)
        self.densepose_roi_pool, self.densepose_head = densepose_roi_pool, densepose_head
        self.densepose_fg_iou_thresh = densepose_fg_iou_thresh
        self.part_weight, self.point_weight = part_weight, point_weight

    def _densepose_samples(self, proposals, matched_idxs, labels, targets):
        """Training RoIs for the DensePose head (per image) with their ground-truth boxes and
        the flat point annotations."""
        rois, gts, pts, offset = [], [], {k: [] for k in ("roi", "x", "y", "I", "U", "V")}, 0
        for props, midx, lab, t in zip(proposals, matched_idxs, labels, targets):
            pos = torch.where(lab > 0)[0]
            props, midx = props[pos], midx[pos]
            gt = t["boxes"][midx].to(props.dtype)
            counts = torch.tensor([len(x) for x in t["dp_x"]], dtype=torch.long)[midx.cpu()]
            keep = _pairwise_iou(gt, props) > self.densepose_fg_iou_thresh
            keep &= (counts > 0).to(props.device)
            rois.append(props[keep])
            gts.append(gt[keep])
            for r, m in enumerate(midx[keep].tolist()):
                n = len(t["dp_x"][m])
                pts["roi"].append(torch.full((n,), offset + r, dtype=torch.long))
                for key in ("x", "y", "I", "U", "V"):
                    pts[key].append(torch.as_tensor(t["dp_" + key][m], dtype=torch.float32).reshape(-1))
            offset += int(keep.sum())
        device = proposals[0].device
        empty = {k: torch.zeros(0, dtype=torch.long if k == "roi" else torch.float32) for k in pts}
        pts = {k: (torch.cat(v) if v else empty[k]).to(device) for k, v in pts.items()}
        return rois, torch.cat(gts), pts

    def forward(self, features, proposals, image_shapes, targets=None):
        if self.training:
            if targets is None:
                raise HcmocoError("DensePose R-CNN training needs targets")
            check_densepose_targets(targets)
            proposals, matched_idxs, labels, regression_targets = self.select_training_samples(
                proposals, targets)
        box_features = self.box_head(self.box_roi_pool(features, proposals, image_shapes))
        class_logits, box_regression = self.box_predictor(box_features)
        if self.training:
            loss_cls, loss_box = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
            rois, gt_boxes, points = self._densepose_samples(proposals, matched_idxs, labels, targets)
            out = self.densepose_head(self.densepose_roi_pool(features, rois, image_shapes))
            losses = {"loss_classifier": loss_cls, "loss_box_reg": loss_box}
            losses.update(densepose_point_losses(out, torch.cat(rois), gt_boxes, points,
                                                 self.part_weight, self.point_weight))
            return [], losses
        boxes, scores, labels = self.postprocess_detections(class_logits, box_regression, proposals,
                                                            image_shapes)
        out = self.densepose_head(self.densepose_roi_pool(features, boxes, image_shapes))
        iuv = decode_iuv(out)
        counts = [len(b) for b in boxes]
        parts = [dict(zip(("dp_part", "dp_u", "dp_v", "dp_iuv"), x)) for x in
                 zip(*(t.split(counts) for t in (out["part"], out["u"], out["v"], iuv)))]
        return [{"boxes": b, "scores": s, "labels": lab, **p}
                for b, s, lab, p in zip(boxes, scores, labels, parts)], {}


class DensePoseRCNN(FasterRCNN):
    """Faster R-CNN whose RoI heads also predict DensePose; see `build_densepose_rcnn`."""


def build_densepose_rcnn(backbone: HRNet, num_classes: int = 2, neck: str = "hrfpn",
                         fpn_channels: int = 256, roi_resolution: int = 14, head_convs: int = 8,
                         head_channels: int = 512, up_scale: int = 2, representation_size: int = 1024,
                         densepose_fg_iou_thresh: float = 0.7, part_weight: float = 1.0,
                         point_weight: float = 0.01, **faster_rcnn_kwargs) -> DensePoseRCNN:
    """DensePose R-CNN on an HRNet (no pretrained weights are fetched). Output maps are
    (2 * up_scale * roi_resolution) square; the rest of **faster_rcnn_kwargs go to torchvision's
    FasterRCNN (min_size, max_size, rpn_*, box_*)."""
    pyramid = HRNetPyramid(backbone, neck, fpn_channels)
    box_pool = MultiScaleRoIAlign(list(LEVELS[:4]), 7, 2)
    model = DensePoseRCNN(pyramid, num_classes=None, box_roi_pool=box_pool,
                          box_head=TwoMLPHead(fpn_channels * 7 * 7, representation_size),
                          box_predictor=FastRCNNPredictor(representation_size, num_classes),
                          **faster_rcnn_kwargs)
    old = model.roi_heads
    model.roi_heads = DensePoseRoIHeads(
        old.box_roi_pool, old.box_head, old.box_predictor,
        old.proposal_matcher.high_threshold, old.proposal_matcher.low_threshold,
        old.fg_bg_sampler.batch_size_per_image, old.fg_bg_sampler.positive_fraction,
        old.box_coder.weights, old.score_thresh, old.nms_thresh, old.detections_per_img,
        densepose_roi_pool=MultiScaleRoIAlign(list(LEVELS[:4]), roi_resolution, 2),
        densepose_head=DensePoseRoIHead(fpn_channels, head_convs, head_channels, up_scale),
        densepose_fg_iou_thresh=densepose_fg_iou_thresh, part_weight=part_weight,
        point_weight=point_weight)
    return model


@torch.no_grad()
def densepose_results(detections: dict[str, Tensor], image_id: int) -> list[dict]:
    """One image's eval output -> detections for hcmoco.eval.densepose.evaluate_densepose:
    bbox [x, y, w, h], score, category_id and "iuv" (h, w, 3) uint8 over the box, the head
    outputs resampled bilinearly to the box size (int(w), int(h)) before the argmax, as the
    official result converter does."""
    results = []
    columns = (detections[k].tolist() for k in ("boxes", "scores", "labels"))
    for k, (box, score, label) in enumerate(zip(*columns)):
        x0, y0, x1, y1 = box
        h, w = max(int(y1 - y0), 1), max(int(x1 - x0), 1)
        out = {n: F.interpolate(detections["dp_" + n][k:k + 1].float(), size=(h, w), mode="bilinear",
                                align_corners=False) for n in ("part", "u", "v")}
        iuv = iuv_to_uint8(decode_iuv(out))[0].cpu().numpy()
        results.append({"image_id": image_id, "category_id": int(label), "score": float(score),
                        "bbox": [x0, y0, x1 - x0, y1 - y0], "iuv": np.ascontiguousarray(iuv)})
    return results
