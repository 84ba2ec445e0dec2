"""DensePose metrics: geodesic point similarity (GPS, GPSm) and its COCOeval-style AP.

Per detected person and ground-truth person with annotated points p (DensePose-COCO fields
dp_I, dp_U, dp_V at image x = bbox_x + dp_x / 255 * bbox_w, likewise y):
    GPS  = (1/|P|) sum_p exp(-d(p)^2 / (2 kappa^2)),  kappa = 0.255 (Guler et al. 2018),
    GPSm = sqrt(GPS * IoU(person masks))   (the DensePose evaluator's "gpsm" mode),
where d(p) is the distance between the ground-truth surface point (dp_I, dp_U, dp_V) and the
surface point of the predicted IUV at p's pixel; a pixel predicted as background, or outside
the detection, has d = inf (contribution 0).

p's pixel: an IUV over the box [bx, by, bw, bh] at the box's integer size int(bh) x int(bw) (the
official converters' size, as hcmoco.tasks.densepose_rcnn.densepose_results writes it) is read
as the official evaluator (detectron2 DensePoseCocoEval.computeOgps) reads it: p = (x, y) at the
pixel (int(y - by), int(x - bx)), int truncating toward 0, the point not rescaled to the map; so
for a non-integer box the last fraction of a pixel (x - bx in [int(bw), bw)) is outside, and a
point less than a pixel left of / above the box reads the first column / row. Its GPSm mask is
the map pasted at (int(by), int(bx)), as the official `_generate_rlemask_on_image`. A box-frame
map of another size (which the official tools never see) is read by scaling the point to it,
(floor((y - by) * H / bh), floor((x - bx) * W / bw)), its mask at each image pixel's centre. An IUV
over the whole image ("iuv_frame": "image", the dense head's single detection) is read at the
pixel (floor(y), floor(x)) p lies in, its mask pixel by pixel; the official evaluator would see it
cropped to its integer box, which differs only for points less than a pixel left of / above that
box (the whole-image map reads the pixel there, outside a tight box around the foreground hence
background, where the crop reads its first row / column).

The distance is pluggable (`DistanceFn`): on SynthHuman the Euclidean distance between rest-pose
template points (`surface_distance`), on DensePose-COCO the SMPL geodesic distance. `kappa` may
also be a (25,) per-part array indexed by the ground-truth part (`PART_KAPPA_2019`, the official
evaluator's per-part normalisation).

AP follows pycocotools and the official DensePose evaluator: per image, detections sorted by
score (top `max_dets` = 20) are matched greedily to the best still-free ground truth with
similarity >= t, for t in 0.5:0.05:0.95; precision is sampled at 101 recall points and
averaged. Ground truths without DensePose points (or crowd) are ignored: a detection matched
to one is ignored too; as in the official evaluator an image whose ground truths are all
ignored (or absent) ignores its detections. A detection left unmatched whose best box IoU
(>= 0.8) with a still-free ground truth is with an ignored one is ignored as well; the
`box_ignore` convention says at which threshold(s) this rule looks:
- "per_threshold" (this pipeline's default): at each threshold t on its own, with t's matches:
  a detection unmatched at t takes the free ground truth of highest box IoU >= 0.8 (the first
  at ties) and is ignored at t if that one is ignored;
- "last_threshold" (the official detectron2 DensePoseCocoEval.evaluateImg): once, after the
  threshold loop, with the matches of the last threshold (0.95) only: a detection unmatched at
  0.95 takes the free (at 0.95) ground truth of highest box IoU >= 0.8 (the last at ties), and
  its ignore flag at EVERY threshold is set to that ground truth's ignore flag, also where it
  was matched at a lower threshold (a true positive at 0.5 can so become ignored, and a match
  with an area-ignored ground truth counted); the pair is marked matched at 0.95 only.
The two agree on most scenes; they differ where a detection matched at low thresholds, not at
0.95, overlaps an ignored person's box, where the matches at 0.95 leave other ground truths
free, or at equal box IoUs.

Detections: {"image_id", "bbox" [x, y, w, h], "score", "iuv" (H, W, 3)} with I in 0..24 and
U, V in [0, 1] (float) or 0..255 (uint8); the IUV covers the box (resampled to its size) or,
with "iuv_frame": "image", the whole image.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
from pycocotools import mask as mask_utils
from scipy.ndimage import zoom

DENSEPOSE_KAPPA = 0.255
_COARSE_KAPPA_2019 = np.array([0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150])
_COARSE_OF_PART_2019 = np.array([0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8])
PART_KAPPA_2019 = _COARSE_KAPPA_2019[_COARSE_OF_PART_2019]
"""Per fine part 0..24: the mean geodesic distances of the official evaluator (2019 on)."""
GPS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
AREA_RANGES = {"all": (0.0, 1e10), "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e10)}
BOX_IGNORE_IOU = 0.8
BOX_IGNORE_CONVENTIONS = ("per_threshold", "last_threshold")

DistanceFn = Callable[..., np.ndarray]
"""distance(I_gt, U_gt, V_gt, I_dt, U_dt, V_dt) -> (N,) distances in metres (inf if I_dt == 0)."""


def surface_distance(iuv_to_surface: Callable[..., np.ndarray]) -> DistanceFn:
    """Euclidean distance between the surface points iuv_to_surface(I, U, V) -> (..., 3)."""
    def distance(gi, gu, gv, di, du, dv) -> np.ndarray:
        d = np.linalg.norm(iuv_to_surface(gi, gu, gv) - iuv_to_surface(di, du, dv), axis=-1)
        return np.where(np.asarray(di) > 0, d, np.inf)
    return distance


def gps(distances, gt_parts=None, kappa=DENSEPOSE_KAPPA) -> float:
    """(1/|P|) sum_p exp(-d_p^2 / (2 kappa_p^2)); kappa scalar or (25,) indexed by gt_parts.
    No points -> 0."""
    d = np.asarray(distances, np.float64)
    if d.size == 0:
        return 0.0
    k = kappa if np.ndim(kappa) == 0 else np.asarray(kappa)[np.asarray(gt_parts, np.intp)]
    return float(np.mean(np.exp(-d ** 2 / (2.0 * np.asarray(k, np.float64) ** 2))))


def gt_points(ann: dict) -> tuple[np.ndarray, ...]:
    """Image x, y and I, U, V of an annotation's DensePose points."""
    bx, by, bw, bh = ann["bbox"]
    x = bx + np.asarray(ann["dp_x"], np.float64) / 255.0 * bw
    y = by + np.asarray(ann["dp_y"], np.float64) / 255.0 * bh
    return (x, y, np.asarray(ann["dp_I"]).astype(np.intp), np.asarray(ann["dp_U"], np.float64),
            np.asarray(ann["dp_V"], np.float64))


def _iuv(det: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    iuv = np.asarray(det["iuv"])
    if iuv.ndim != 3 or iuv.shape[2] != 3:
        raise ValueError(f"detection iuv must be (H, W, 3), got {iuv.shape}")
    scale = 255.0 if iuv.dtype == np.uint8 else 1.0
    return np.rint(iuv[..., 0]).astype(np.intp), iuv[..., 1] / scale, iuv[..., 2] / scale


def _official_size(det: dict, shape: tuple[int, ...]) -> bool:
    """Whether a box-frame IUV is at the box's integer size (the official converters' map)."""
    bh, bw = float(det["bbox"][3]), float(det["bbox"][2])
    return tuple(shape[:2]) == (max(int(bh), 1), max(int(bw), 1))


def _box_pixels(det: dict, x: np.ndarray, y: np.ndarray, shape: tuple[int, int]):
    """(row, col) in a box-frame IUV map and whether the point falls inside it (module
    docstring: the official indexing at the box's integer size, else scaled to the map)."""
    bx, by, bw, bh = (float(v) for v in det["bbox"])
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if _official_size(det, shape):
        r, c = np.trunc(y - by).astype(np.intp), np.trunc(x - bx).astype(np.intp)  # int(): toward 0
        return r, c, (r >= 0) & (r < int(bh)) & (c >= 0) & (c < int(bw))
    r = np.floor((y - by) * shape[0] / max(bh, 1e-9)).astype(np.intp)
    c = np.floor((x - bx) * shape[1] / max(bw, 1e-9)).astype(np.intp)
    return r, c, (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])


def sample_detection(det: dict, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Predicted I, U, V at image points (x, y); I = 0 where a point falls outside the map
    (box frame: outside the box's integer pixels, as the official evaluator)."""
    I, U, V = _iuv(det)
    if det.get("iuv_frame", "box") == "image":
        r, c = np.floor(y).astype(np.intp), np.floor(x).astype(np.intp)
        inside = (r >= 0) & (r < I.shape[0]) & (c >= 0) & (c < I.shape[1])
    else:
        r, c, inside = _box_pixels(det, x, y, I.shape)
    r, c = np.where(inside, r, 0), np.where(inside, c, 0)
    return np.where(inside, I[r, c], 0), U[r, c], V[r, c]


def person_gps(ann: dict, det: dict, distance_fn: DistanceFn, kappa=DENSEPOSE_KAPPA) -> float:
    """GPS of one detection against one ground-truth person."""
    x, y, gi, gu, gv = gt_points(ann)
    if gi.size == 0:
        return 0.0
    di, du, dv = sample_detection(det, x, y)
    d = np.where(di > 0, distance_fn(gi, gu, gv, di, du, dv), np.inf)
    return gps(d, gi, kappa)


def detection_mask(det: dict, height: int, width: int) -> np.ndarray:
    """(H, W) bool foreground (I > 0) of a detection: a box-frame IUV at the box's integer size
    pasted at (int(by), int(bx)), clipped to the image and to int(by + bh), int(bx + bw), as the
    official evaluator's `_generate_rlemask_on_image`; any other IUV read at each image pixel's
    centre (a whole-image one: pixel by pixel)."""
    I = _iuv(det)[0]
    if det.get("iuv_frame", "box") == "image" or not _official_size(det, I.shape):
        y, x = np.mgrid[0:height, 0:width] + 0.5
        return sample_detection(det, x, y)[0] > 0
    bx, by, bw, bh = (float(v) for v in det["bbox"])
    out = np.zeros((height, width), bool)
    x0, y0 = max(int(bx), 0), max(int(by), 0)
    x1 = min(int(bx + bw), width, int(bx) + I.shape[1])
    y1 = min(int(by + bh), height, int(by) + I.shape[0])
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = I[y0 - int(by):y1 - int(by), x0 - int(bx):x1 - int(bx)] > 0
    return out


def gt_mask(ann: dict, height: int, width: int) -> np.ndarray:
    """(H, W) bool person mask: the union of the 14 dp_masks (256x256 over the box, resampled
    bilinearly and thresholded at 0.5 as in the official evaluator), else `segmentation`."""
    out = np.zeros((height, width), bool)
    if ann.get("dp_masks"):
        m = np.zeros((256, 256))
        for rle in ann["dp_masks"]:
            if rle:
                m = np.maximum(m, mask_utils.decode(rle))
        x, y, w, h = ann["bbox"]
        m = zoom(m, (max(h, 1) / 256.0, max(w, 1) / 256.0), order=1, prefilter=False) > 0.5
        x0, y0 = max(int(x), 0), max(int(y), 0)
        x1, y1 = min(int(x + w), width, int(x) + m.shape[1]), min(int(y + h), height, int(y) + m.shape[0])
        out[y0:y1, x0:x1] = m[y0 - int(y):y1 - int(y), x0 - int(x):x1 - int(x)]
    elif ann.get("segmentation"):
        seg = ann["segmentation"]
        if isinstance(seg, list):  # polygons
            seg = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        elif isinstance(seg["counts"], list):  # uncompressed RLE
            seg = mask_utils.frPyObjects(seg, height, width)
        out = mask_utils.decode(seg) > 0
    return out


def similarity_matrices(gts: list[dict], dts: list[dict], height: int, width: int,
                        distance_fn: DistanceFn, kappa=DENSEPOSE_KAPPA, mode: str = "gps"):
    """(D, G) GPS (mode "gps") or GPSm (mode "gpsm") and (D, G) box IoU, in the given orders;
    ignored ground truths (no dp_x, or crowd) get similarity 0."""
    if mode not in ("gps", "gpsm"):
        raise ValueError(f"mode must be 'gps' or 'gpsm', got {mode!r}")
    sim = np.zeros((len(dts), len(gts)))
    crowd = [int(g.get("iscrowd", 0)) for g in gts]
    for j, g in enumerate(gts):
        if not _ignored(g):
            for i, d in enumerate(dts):
                sim[i, j] = person_gps(g, d, distance_fn, kappa)
    if mode == "gpsm" and sim.size:
        rle = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in
               [detection_mask(d, height, width) for d in dts] + [gt_mask(g, height, width) for g in gts]]
        miou = mask_utils.iou(rle[:len(dts)], rle[len(dts):], crowd)
        sim = np.sqrt(sim * np.asarray(miou).reshape(sim.shape))
    box = mask_utils.iou([list(map(float, d["bbox"])) for d in dts],
                         [list(map(float, g["bbox"])) for g in gts], crowd) if sim.size else sim
    return sim, np.asarray(box, np.float64).reshape(sim.shape)


def _ignored(ann: dict) -> bool:
    return "dp_x" not in ann or bool(ann.get("iscrowd", 0))


def match_image(sim: np.ndarray, scores, gt_ignore, gt_crowd=None, thresholds=GPS_THRESHOLDS,
                max_dets: int = 20, box_iou: np.ndarray | None = None, dt_out_of_range=None,
                box_ignore: str = "per_threshold") -> dict | None:
    """COCOeval.evaluateImg on a given (D, G) similarity (detections and ground truths in any
    order): per threshold, each detection by descending score takes the free ground truth of
    highest similarity >= t (non-ignored before ignored ones); with `box_iou`, the box-IoU
    ignore rule under `box_ignore` ("per_threshold" or "last_threshold", module docstring).
    Returns the detections' sorted scores and (T, D) matched / ignored flags and the (G,)
    ignore flags, or None if D = G = 0."""
    if box_ignore not in BOX_IGNORE_CONVENTIONS:
        raise ValueError(f"box_ignore must be one of {BOX_IGNORE_CONVENTIONS}, got {box_ignore!r}")
    scores, gt_ignore = np.asarray(scores, np.float64), np.asarray(gt_ignore, bool)
    num_d, num_g, T = len(scores), len(gt_ignore), len(thresholds)
    if num_d == 0 and num_g == 0:
        return None
    crowd = np.zeros(num_g, bool) if gt_crowd is None else np.asarray(gt_crowd, bool)
    gind, dind = np.argsort(gt_ignore, kind="mergesort"), np.argsort(-scores, kind="mergesort")[:max_dets]
    sim = np.asarray(sim, np.float64).reshape(num_d, num_g)[np.ix_(dind, gind)]
    gt_ig, crowd, D = gt_ignore[gind], crowd[gind], len(dind)
    dtm, gtm, dt_ig = np.zeros((T, D), bool), np.zeros((T, num_g), bool), np.zeros((T, D), bool)
    if gt_ig.all():  # official DensePose rule (also for an image without ground truth)
        dt_ig[:] = True
    for t, thr in enumerate(thresholds):
        for d in range(D):
            best, m = min(thr, 1 - 1e-10), -1
            for g in range(num_g):
                if gtm[t, g] and not crowd[g]:
                    continue
                if m > -1 and not gt_ig[m] and gt_ig[g]:
                    break
                if sim[d, g] < best:
                    continue
                best, m = sim[d, g], g
            if m > -1:
                dt_ig[t, d], dtm[t, d], gtm[t, m] = gt_ig[m], True, True
    if box_iou is not None and num_g and D and box_ignore == "last_threshold":
        box, t = np.asarray(box_iou, np.float64).reshape(num_d, num_g)[np.ix_(dind, gind)], T - 1
        for d in np.flatnonzero(~dtm[t]):  # flags at 0.95, updated as detections take ones
            best, m = BOX_IGNORE_IOU, -1
            for g in range(num_g):
                if gtm[t, g] and not crowd[g]:
                    continue
                if box[d, g] >= best:  # >=: the last of equal IoUs, as the official loop
                    best, m = box[d, g], g
            if m > -1:
                dt_ig[:, d] = gt_ig[m]  # every threshold
                if gt_ig[m]:
                    dtm[t, d], gtm[t, m] = True, True
    elif box_iou is not None and num_g:
        box = np.asarray(box_iou, np.float64).reshape(num_d, num_g)[np.ix_(dind, gind)]
        for t in range(T):
            for d in np.flatnonzero(~dtm[t]):
                free = np.where(gtm[t] & ~crowd, -1.0, box[d])
                m = int(np.argmax(free))
                if free[m] >= BOX_IGNORE_IOU:
                    dt_ig[t, d] = gt_ig[m]
                    if gt_ig[m]:
                        dtm[t, d], gtm[t, m] = True, True
    if dt_out_of_range is not None:
        dt_ig |= ~dtm & np.asarray(dt_out_of_range, bool)[dind][None]
    return {"scores": scores[dind], "dt_matched": dtm, "dt_ignore": dt_ig, "gt_ignore": gt_ig}


def accumulate(records: list[dict | None], num_thresholds: int = len(GPS_THRESHOLDS),
               rec_thresholds=RECALL_THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate for one category / area / maxDets: (T, R) interpolated precision and
    (T,) recall over all images; all -1 when there is no non-ignored ground truth."""
    recs = [r for r in records if r is not None]
    precision, recall = -np.ones((num_thresholds, len(rec_thresholds))), -np.ones(num_thresholds)
    if not recs:
        return precision, recall
    order = np.argsort(-np.concatenate([r["scores"] for r in recs]), kind="mergesort")
    dtm = np.concatenate([r["dt_matched"] for r in recs], axis=1)[:, order]
    dt_ig = np.concatenate([r["dt_ignore"] for r in recs], axis=1)[:, order]
    npig = np.count_nonzero(~np.concatenate([r["gt_ignore"] for r in recs]))
    if npig == 0:
        return precision, recall
    tp = np.cumsum(dtm & ~dt_ig, axis=1).astype(np.float64)
    fp = np.cumsum(~dtm & ~dt_ig, axis=1).astype(np.float64)
    for t in range(num_thresholds):
        rc, pr = tp[t] / npig, tp[t] / (fp[t] + tp[t] + np.spacing(1))
        recall[t] = rc[-1] if len(rc) else 0.0
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope
        idx = np.searchsorted(rc, rec_thresholds, side="left")
        valid = idx < len(pr)  # recall levels never reached keep precision 0
        precision[t] = 0.0
        precision[t, valid] = pr[idx[valid]]
    return precision, recall


def _mean_valid(a: np.ndarray) -> float:
    a = a[a > -1]
    return float(a.mean()) if a.size else float("nan")


def summarize(precision: dict, recall: dict, thresholds=GPS_THRESHOLDS) -> dict:
    """AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl (fractions; NaN when undefined)."""
    t50, t75 = (int(np.argmin(np.abs(np.asarray(thresholds) - v))) for v in (0.5, 0.75))
    out = {}
    for prefix, arr in (("AP", precision), ("AR", recall)):
        out[prefix] = _mean_valid(arr["all"])
        out[prefix + "50"], out[prefix + "75"] = _mean_valid(arr["all"][t50]), _mean_valid(arr["all"][t75])
        out[prefix + "m"], out[prefix + "l"] = _mean_valid(arr["medium"]), _mean_valid(arr["large"])
    return out


def evaluate_densepose(coco_gt: dict, detections: list[dict], distance_fn: DistanceFn,
                       mode: str = "gps", kappa=DENSEPOSE_KAPPA, max_dets: int = 20,
                       category_id: int = 1, box_ignore: str = "per_threshold") -> dict:
    """GPS (or GPSm) AP of `detections` against a COCO dict with DensePose fields (one category),
    the box-IoU ignore rule under `box_ignore` ("per_threshold" or "last_threshold", the
    official evaluator's; module docstring). Returns summarize()'s dict plus "mode",
    "box_ignore" and "num_images"."""
    if box_ignore not in BOX_IGNORE_CONVENTIONS:
        raise ValueError(f"box_ignore must be one of {BOX_IGNORE_CONVENTIONS}, got {box_ignore!r}")
    images = {im["id"]: im for im in coco_gt["images"]}
    unknown = {d["image_id"] for d in detections} - set(images)
    if unknown:
        raise ValueError(f"detections for unknown image ids {sorted(unknown)[:5]}")
    gts, dts = defaultdict(list), defaultdict(list)
    for group, items in ((gts, coco_gt["annotations"]), (dts, detections)):
        for x in items:
            if x.get("category_id", category_id) == category_id:
                group[x["image_id"]].append(x)
    records = {name: [] for name in AREA_RANGES}
    for img_id in sorted(images):
        g = gts[img_id]
        d = sorted(dts[img_id], key=lambda x: -x["score"])[:max_dets]  # stable, like mergesort
        sim, box = similarity_matrices(g, d, images[img_id]["height"], images[img_id]["width"],
                                       distance_fn, kappa, mode)
        for name, (lo, hi) in AREA_RANGES.items():
            ignore = [_ignored(a) or not lo <= a["area"] <= hi for a in g]
            out = [not lo <= x["bbox"][2] * x["bbox"][3] <= hi for x in d]
            records[name].append(match_image(sim, [x["score"] for x in d], ignore,
                                             [a.get("iscrowd", 0) for a in g], GPS_THRESHOLDS,
                                             max_dets, box, out, box_ignore))
    acc = {name: accumulate(r) for name, r in records.items()}
    stats = summarize({k: v[0] for k, v in acc.items()}, {k: v[1] for k, v in acc.items()})
    return {**stats, "mode": mode, "box_ignore": box_ignore, "num_images": len(images)}


def best_gps_per_person(coco_gt: dict, detections: list[dict], distance_fn: DistanceFn,
                        kappa=DENSEPOSE_KAPPA) -> list[float]:
    """Per non-ignored ground-truth person: the best GPS of any detection in its image (0
    without one). Its mean still moves while every GPS stays below the AP's thresholds."""
    by_image: dict[int, list] = defaultdict(list)
    for d in detections:
        by_image[d["image_id"]].append(d)
    return [max([person_gps(a, d, distance_fn, kappa) for d in by_image[a["image_id"]]], default=0.0)
            for a in coco_gt["annotations"] if not _ignored(a)]
