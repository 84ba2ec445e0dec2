"""GPS / GPSm and their COCOeval-style AP, against the formula and pycocotools' accumulation."""
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hcmoco.processed.densepose_coco import coarse_masks, person_box
from hcmoco.eval import (DENSEPOSE_KAPPA, GPS_THRESHOLDS, accumulate, detection_mask,
                         evaluate_densepose, gps, gt_mask, match_image, person_gps,
                         sample_detection, similarity_matrices, surface_distance)


def stand_in_surface(I, U, V):
    """Parts 10 m apart (GPS 0 across parts); within a part 0.5 m per unit of U or V."""
    I, U, V = np.broadcast_arrays(np.asarray(I, float), np.asarray(U, float), np.asarray(V, float))
    return np.stack([I * 10.0, U * 0.5, V * 0.5], -1)


DIST = surface_distance(stand_in_surface)


def person_iuv(h, w, first_part=1):
    """(h, w, 3) float IUV: four parts in quadrants, U, V in [0, 0.5] across each quadrant."""
    rows, cols = np.mgrid[0:h, 0:w]
    part = first_part + (rows >= h // 2) * 2 + (cols >= w // 2)
    return np.stack([part, 0.5 * cols / w, 0.5 * rows / h], -1).astype(np.float64)


def make_gt(persons, height=48, width=64, ann_id=1):
    """persons: list of (image_id, (x0, y0, w, h)); dense points on every pixel of the box."""
    images = sorted({p[0] for p in persons})
    anns, truth = [], {}
    for n, (img, (x0, y0, w, h)) in enumerate(persons):
        iuv = person_iuv(h, w, first_part=1 + 4 * (n % 6))
        ys, xs = np.mgrid[0:h, 0:w]
        full = np.zeros((height, width), np.uint8)
        full[y0:y0 + h, x0:x0 + w] = 1
        rle = mask_utils.encode(np.asfortranarray(full))
        rle["counts"] = rle["counts"].decode("ascii")
        anns.append({"id": ann_id + n, "image_id": img, "category_id": 1, "iscrowd": 0,
                     "bbox": [float(x0), float(y0), float(w), float(h)], "area": float(w * h),
                     "segmentation": rle, "dp_I": iuv[..., 0].ravel().tolist(),
                     "dp_U": iuv[..., 1].ravel().tolist(), "dp_V": iuv[..., 2].ravel().tolist(),
                     "dp_x": ((xs.ravel() + 0.5) / w * 255).tolist(),
                     "dp_y": ((ys.ravel() + 0.5) / h * 255).tolist()})
        truth[ann_id + n] = iuv
    gt = {"images": [{"id": i, "height": height, "width": width} for i in images],
          "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    return gt, truth


def det(ann, iuv, score=0.9):
    return {"image_id": ann["image_id"], "category_id": 1, "bbox": list(ann["bbox"]),
            "score": score, "iuv": iuv}


def test_gps_formula():
    assert gps([0.0, 0.0]) == 1.0
    assert gps([]) == 0.0
    assert gps([np.inf, 0.0]) == 0.5
    assert gps([0.3]) == pytest.approx(np.exp(-0.09 / (2 * 0.255 ** 2)))
    kappa = np.full(25, 0.1)
    assert gps([0.1, 0.1], gt_parts=[1, 2], kappa=kappa) == pytest.approx(np.exp(-0.5))


def test_perfect_prediction_gives_ap_one():
    gt, truth = make_gt([(1, (4, 6, 20, 30)), (1, (36, 4, 16, 24)), (2, (10, 10, 24, 20))])
    dets = [det(a, truth[a["id"]]) for a in gt["annotations"]]
    for mode in ("gps", "gpsm"):
        out = evaluate_densepose(gt, dets, DIST, mode=mode)
        assert out["AP"] == pytest.approx(1.0) and out["AR"] == pytest.approx(1.0)


def test_wrong_part_everywhere_gives_zero():
    gt, truth = make_gt([(1, (4, 6, 20, 30)), (2, (10, 10, 24, 20))])
    dets = []
    for a in gt["annotations"]:
        wrong = truth[a["id"]].copy()
        wrong[..., 0] = wrong[..., 0] % 24 + 1
        dets.append(det(a, wrong))
        assert person_gps(a, dets[-1], DIST) == pytest.approx(0.0, abs=1e-12)
    assert evaluate_densepose(gt, dets, DIST)["AP"] == 0.0
    background = [det(a, np.zeros_like(truth[a["id"]])) for a in gt["annotations"]]
    assert person_gps(gt["annotations"][0], background[0], DIST) == 0.0


def test_known_offset_gives_the_exp_formula():
    gt, truth = make_gt([(1, (4, 6, 20, 30))])
    ann = gt["annotations"][0]
    shifted = truth[ann["id"]].copy()
    shifted[..., 1] += 0.2  # 0.1 m on the stand-in surface
    expected = np.exp(-0.1 ** 2 / (2 * DENSEPOSE_KAPPA ** 2))  # 0.926
    assert person_gps(ann, det(ann, shifted), DIST) == pytest.approx(expected)
    # quantised uint8 IUV and a full-image IUV read the same points
    as_uint8 = np.concatenate([shifted[..., :1], np.rint(shifted[..., 1:] * 255)], -1).astype(np.uint8)
    assert person_gps(ann, det(ann, as_uint8), DIST) == pytest.approx(expected, abs=2e-3)
    full = np.zeros((48, 64, 3))
    full[6:36, 4:24] = shifted
    assert person_gps(ann, {**det(ann, full), "iuv_frame": "image"}, DIST) == pytest.approx(expected)
    # GPS 0.926 passes the thresholds 0.50 .. 0.90 but not 0.95: AP = 9/10
    out = evaluate_densepose(gt, [det(ann, shifted)], DIST)
    assert out["AP"] == pytest.approx(0.9) and out["AP50"] == pytest.approx(1.0) == out["AP75"]


def test_gpsm_is_sqrt_of_gps_times_mask_iou():
    gt, truth = make_gt([(1, (4, 6, 20, 30))])
    ann = gt["annotations"][0]
    half = truth[ann["id"]].copy()
    half[:, 10:] = 0  # right half predicted as background: GPS 0.5, mask IoU 0.5
    d = det(ann, half)
    sim, _ = similarity_matrices([ann], [d], 48, 64, DIST, mode="gps")
    simm, _ = similarity_matrices([ann], [d], 48, 64, DIST, mode="gpsm")
    assert sim[0, 0] == pytest.approx(0.5)
    assert simm[0, 0] == pytest.approx(np.sqrt(0.5 * 0.5))


def test_detection_on_unannotated_person_is_ignored_not_false():
    gt, truth = make_gt([(1, (4, 6, 20, 30))])
    ann = gt["annotations"][0]
    plain = {"id": 99, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [36.0, 4.0, 16.0, 24.0],
             "area": 384.0}  # a person without DensePose points
    extra = {**det(plain, person_iuv(24, 16)), "score": 0.99}
    dets = [det(ann, truth[ann["id"]], 0.5), extra]
    assert evaluate_densepose(gt, dets, DIST)["AP"] < 0.9  # without it the extra one is a false positive
    gt["annotations"].append(plain)
    assert evaluate_densepose(gt, dets, DIST)["AP"] == pytest.approx(1.0)


# ---- equality with pycocotools' COCOeval fed the same similarities -------------------------
def _cocoeval_ap(gt, dets, similarity, area_rng=(0.0, 1e10)):
    coco_gt = COCO()
    coco_gt.dataset = gt
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes([{k: v for k, v in d.items()} for d in dets])
    E = COCOeval(coco_gt, coco_dt, "bbox")
    E.params.maxDets, E.params.areaRng, E.params.areaRngLbl = [20], [list(area_rng)], ["all"]

    def compute_iou(img_id, cat_id):
        g, d = E._gts[img_id, cat_id], E._dts[img_id, cat_id]
        if not g and not d:
            return []
        d = [d[i] for i in np.argsort([-x["score"] for x in d], kind="mergesort")][:20]
        return similarity(img_id, g, d)

    E.computeIoU = compute_iou
    E.evaluate()
    E.accumulate()
    p = E.eval["precision"][:, :, 0, 0, 0]
    return float(p[p > -1].mean())


def test_matching_and_accumulation_equal_cocoeval_on_random_similarities():
    rng = np.random.default_rng(0)
    gt = {"images": [{"id": i, "height": 100, "width": 100} for i in range(1, 6)], "annotations": [],
          "categories": [{"id": 1, "name": "person"}]}
    dets, sims = [], {}
    for img in range(1, 6):
        n_g, n_d = int(rng.integers(1, 4)), int(rng.integers(0, 6))
        for _ in range(n_g):
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": img, "category_id": 1,
                                      "iscrowd": 0, "bbox": [0, 0, 10, 10], "area": 100.0})
        for _ in range(n_d):
            dets.append({"image_id": img, "category_id": 1, "bbox": [0, 0, 10, 10],
                         "score": float(rng.choice([0.3, 0.5, 0.7, 0.9])), "key": len(dets)})  # ties
        # values on the thresholds and repeated within a row: ties must break as in COCOeval
        sims[img] = rng.choice(np.r_[GPS_THRESHOLDS, 0.3, 0.62, 0.97], (n_d, n_g))

    def similarity(img, g, d):  # rows follow the detections given, columns the gts given
        first_gt = min(a["id"] for a in gt["annotations"] if a["image_id"] == img)
        keys = [x["key"] for x in dets if x["image_id"] == img]
        return sims[img][[keys.index(x["key"]) for x in d]][:, [a["id"] - first_gt for a in g]]

    records = []
    for img in range(1, 6):
        mine = [x for x in dets if x["image_id"] == img]
        n_g = sum(a["image_id"] == img for a in gt["annotations"])
        records.append(match_image(sims[img], [x["score"] for x in mine], np.zeros(n_g, bool)))
    precision, _ = accumulate(records)
    ours = float(precision[precision > -1].mean())
    assert 0.05 < ours < 0.95
    assert ours == pytest.approx(_cocoeval_ap(gt, dets, similarity), abs=1e-12)


def test_evaluator_equals_cocoeval_on_noisy_predictions():
    rng = np.random.default_rng(1)
    persons = [(1, (2, 2, 20, 30)), (1, (30, 8, 24, 32)), (2, (5, 5, 30, 36)), (3, (8, 4, 16, 20)),
               (3, (34, 10, 22, 30)), (4, (12, 6, 26, 34))]
    gt, truth = make_gt(persons)
    dets = []
    for a in gt["annotations"]:
        for _ in range(int(rng.integers(0, 3))):
            iuv = truth[a["id"]].copy()
            iuv[..., 1:] += rng.uniform(0, 0.6) * rng.random(iuv.shape[:2] + (2,))
            wrong = rng.random(iuv.shape[:2]) < rng.uniform(0, 0.5)
            iuv[wrong, 0] = iuv[wrong, 0] % 24 + 1
            dets.append(det(a, np.clip(iuv, 0, 24), float(rng.random())))
    dets.append({"image_id": 2, "category_id": 1, "bbox": [40.0, 10.0, 20.0, 20.0], "score": 0.95,
                 "iuv": person_iuv(20, 20)})  # a confident false positive
    ours = evaluate_densepose(gt, dets, DIST)["AP"]

    def similarity(img, g, d):
        return similarity_matrices(g, d, 48, 64, DIST)[0]

    assert 0.05 < ours < 0.95
    assert ours == pytest.approx(_cocoeval_ap(gt, dets, similarity), abs=1e-12)
    assert len(GPS_THRESHOLDS) == 10


def test_masks_from_dp_masks_and_resampled_detections():
    parsing = np.zeros((48, 64), np.uint8)
    parsing[6:40, 20:34] = 1  # torso
    parsing[10:14, 34:50] = 15  # an arm
    box = person_box(parsing > 0)
    ann = {"bbox": box, "dp_masks": coarse_masks(parsing, box)}
    m, p = gt_mask(ann, 48, 64), parsing > 0
    assert (m & p).sum() / (m | p).sum() > 0.95
    # a box-frame IUV at half the box resolution covers the same pixels
    x0, y0, w, h = (int(v) for v in box)
    iuv = np.zeros((h // 2, w // 2, 3))
    iuv[..., 0] = parsing[y0:y0 + h:2, x0:x0 + w:2]
    dm = detection_mask({"bbox": box, "iuv": iuv}, 48, 64)
    assert (dm & p).sum() / (dm | p).sum() > 0.9 and not dm[:, :x0].any()


def test_best_gps_per_person_takes_the_best_detection_of_its_image():
    from hcmoco.eval import best_gps_per_person

    gt, truth = make_gt([(0, (4, 4, 16, 16)), (1, (8, 8, 12, 12)), (2, (2, 2, 10, 10))])
    a, b, c = gt["annotations"]
    c.pop("dp_x")  # a person without DensePose labels: ignored
    exact, off = det(a, truth[a["id"]]), det(a, truth[a["id"]] * [1, 0, 0])  # U, V zeroed: GPS < 1
    got = best_gps_per_person(gt, [off, exact], DIST)
    assert got == [pytest.approx(1.0), 0.0]  # b's image has no detection
    worse = best_gps_per_person(gt, [off], DIST)[0]
    assert worse == pytest.approx(person_gps(a, off, DIST)) and worse < 1.0


# ---- the box-IoU ignore rule: per threshold vs once at the last threshold (official) --------
def _box_ignore_scene():
    """Image 1: person A (points) and person B (no points, ignored) one row taller at the same
    place; detection d1 (score 0.9) has B's box and A's IUV with U shifted by 0.4 (0.2 m on the
    stand-in surface): GPS(d1, A) = exp(-0.2^2 / (2 * 0.255^2)) = 0.735, box IoU 600/620 = 0.968
    with A and 1.0 with B. Image 2: person C, detected exactly by d2 (score 0.8)."""
    gt, truth = make_gt([(1, (4, 6, 20, 30)), (2, (10, 10, 24, 20))])
    a, c = gt["annotations"]
    gt["annotations"].append({"id": 9, "image_id": 1, "category_id": 1, "iscrowd": 0,
                              "bbox": [4.0, 6.0, 20.0, 31.0], "area": 620.0})
    iuv = np.zeros((31, 20, 3))
    iuv[:30] = truth[a["id"]] + [0, 0.4, 0]
    d1 = {"image_id": 1, "category_id": 1, "bbox": [4.0, 6.0, 20.0, 31.0], "score": 0.9, "iuv": iuv}
    return gt, [d1, det(c, truth[c["id"]], 0.8)], a


def test_box_ignore_per_threshold_and_last_threshold_differ_on_a_hand_built_scene():
    gt, dets, a = _box_ignore_scene()
    g = np.exp(-0.2 ** 2 / (2 * DENSEPOSE_KAPPA ** 2))
    assert person_gps(a, dets[0], DIST) == pytest.approx(g) and 0.70 < g < 0.75
    # per_threshold: at t = 0.50 .. 0.70 (5 thresholds) d1 matches A and d2 matches C: precision
    # 1 at every recall, AP_t = 1. At t = 0.75 .. 0.95 d1 is unmatched and its best free box is
    # B's (IoU 1.0 > 0.968): ignored; d2 is the only counted detection, recall 1/2 of 2 persons:
    # precision 1 at recall 0, 0.01 .. 0.50 (51 of 101 points), 0 above: AP_t = 51/101.
    # AP = (5 * 1 + 5 * 51/101) / 10 = 76/101 = 0.7525; AR = (5 * 1 + 5 * 0.5) / 10 = 0.75.
    per = evaluate_densepose(gt, dets, DIST)
    assert per["AP"] == pytest.approx(76 / 101) and per["AR"] == pytest.approx(0.75)
    assert per["box_ignore"] == "per_threshold"
    # last_threshold (detectron2 DensePoseCocoEval.evaluateImg): d1 is unmatched at 0.95 and its
    # best free box is B's, so d1 is ignored at EVERY threshold, its match with A at 0.50 .. 0.70
    # included: every threshold is like 0.75 above, AP = 51/101 = 0.5050, AR = 0.5.
    last = evaluate_densepose(gt, dets, DIST, box_ignore="last_threshold")
    assert last["AP"] == pytest.approx(51 / 101) and last["AR"] == pytest.approx(0.5)
    assert per["AP"] - last["AP"] == pytest.approx(25 / 101)  # 0.2475
    with pytest.raises(ValueError, match="box_ignore"):
        evaluate_densepose(gt, dets, DIST, box_ignore="official")


def test_last_threshold_rule_on_matrices():
    # the same decisions on bare matrices: d0 matches g0 (regular) at 0.5 .. 0.7 only; box IoU
    # 0.9 with g0 and 0.95 with g1 (ignored); g2 (regular) has no detection
    sim = np.array([[0.72, 0.0, 0.0]])
    box = np.array([[0.9, 0.95, 0.0]])
    ignore = [False, True, False]
    per = match_image(sim, [0.9], ignore, box_iou=box)
    last = match_image(sim, [0.9], ignore, box_iou=box, box_ignore="last_threshold")
    assert per["dt_matched"][:, 0].tolist() == [True] * 10  # to g0 at t <= 0.7, to g1 (ignored) above
    assert per["dt_ignore"][:, 0].tolist() == [False] * 5 + [True] * 5
    assert last["dt_matched"][:, 0].tolist() == [True] * 5 + [False] * 4 + [True]  # g1 at 0.95 only
    assert last["dt_ignore"][:, 0].tolist() == [True] * 10
    # equal box IoUs: per_threshold takes the first (regular g0: a false positive above 0.7),
    # the official loop the last (g1: ignored everywhere)
    tie = np.array([[0.9, 0.9, 0.0]])
    assert match_image(sim, [0.9], ignore, box_iou=tie)["dt_ignore"][:, 0].tolist() == [False] * 10
    assert match_image(sim, [0.9], ignore, box_iou=tie, box_ignore="last_threshold")["dt_ignore"].all()


def test_conventions_agree_without_box_overlap():
    rng = np.random.default_rng(3)
    for _ in range(50):  # no box IoU reaches 0.8: the rule never applies, the results are equal
        d, g = int(rng.integers(0, 5)), int(rng.integers(1, 4))
        sim, box, scores = rng.random((d, g)), rng.random((d, g)) * 0.79, rng.random(d)
        ignore = rng.random(g) < 0.3
        a = match_image(sim, scores, ignore, box_iou=box)
        b = match_image(sim, scores, ignore, box_iou=box, box_ignore="last_threshold")
        for key in ("dt_matched", "dt_ignore", "scores", "gt_ignore"):
            np.testing.assert_array_equal(a[key], b[key])


# ---- where a box-frame IUV is read: detectron2's int(y - by), no rescaling -----------------
def _coded_iuv(h, w):
    """IUV whose U, V name the pixel read: U = row / 100, V = col / 100, I = 1 everywhere."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([np.ones((h, w)), rows / 100.0, cols / 100.0], -1)


def _read(d, x, y):
    i, u, v = sample_detection(d, np.atleast_1d(np.asarray(x, float)), np.atleast_1d(np.asarray(y, float)))
    return [(int(a), int(round(b * 100)), int(round(c * 100))) if a else None for a, b, c in zip(i, u, v)]


def test_integer_box_reads_the_same_pixels_as_before():
    rng = np.random.default_rng(4)
    bx, by, bw, bh = 4.0, 6.0, 20.0, 30.0
    d = {"bbox": [bx, by, bw, bh], "iuv": _coded_iuv(30, 20)}
    x, y = bx + rng.random(500) * bw, by + rng.random(500) * bh
    old = list(zip(np.floor((y - by) * 30 / bh).astype(int), np.floor((x - bx) * 20 / bw).astype(int)))
    assert [(r, c) for _, r, c in _read(d, x, y)] == old
    # outside: past the far edges, or a whole pixel before the box
    assert _read(d, [bx + bw + 0.1, bx + 1, bx - 1.0], [by + 1, by + bh, by + 1]) == [None, None, None]


def test_non_integer_box_reads_the_official_pixel():
    bx, by, bw, bh = 4.6, 6.3, 20.7, 30.8
    d = {"bbox": [bx, by, bw, bh], "iuv": _coded_iuv(30, 20)}  # the map at int(bh) x int(bw)
    # (x - bx, y - by) = (19.5, 10.2): official pixel (10, 19); the rescaled reading was
    # (floor(10.2 * 30 / 30.8), floor(19.5 * 20 / 20.7)) = (9, 18)
    assert _read(d, bx + 19.5, by + 10.2) == [(1, 10, 19)]
    # x - bx = 20.3 < bw but >= int(bw) = 20: outside (the rescaled reading gave column 19)
    assert _read(d, bx + 20.3, by + 1.5) == [None]
    # x - bx = -0.4: int() truncates toward 0, column 0 (the rescaled reading was outside)
    assert _read(d, bx - 0.4, by + 1.5) == [(1, 1, 0)]
    # a map of another size (never seen by the official tools) scales the point to it:
    # (floor(10.2 * 15 / 30.8), floor(19.5 * 10 / 20.7)) = (4, 9)
    half = {"bbox": [bx, by, bw, bh], "iuv": _coded_iuv(15, 10)}
    assert _read(half, bx + 19.5, by + 10.2) == [(1, 4, 9)]


def test_box_frame_mask_is_pasted_at_the_integer_box():
    d = {"bbox": [4.6, 6.3, 20.7, 30.8], "iuv": _coded_iuv(30, 20)}
    m = detection_mask(d, 48, 64)
    expected = np.zeros((48, 64), bool)
    expected[6:36, 4:24] = True  # rows int(6.3) .. int(6.3) + 30, columns int(4.6) .. + 20
    np.testing.assert_array_equal(m, expected)
    # clipped at the image border
    edge = detection_mask({"bbox": [50.5, 40.2, 20.0, 20.0], "iuv": _coded_iuv(20, 20)}, 48, 64)
    assert edge.sum() == 8 * 14 and edge[40:, 50:].all()
