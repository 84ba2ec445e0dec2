"""GPS with geodesic distances on the SMPL surface, as the official DensePose evaluator defines it.

Followed: detectron2 projects/DensePose densepose/evaluation/densepose_coco_evaluation.py
(DensePoseCocoEval._loadGEval, findAllClosestVertsGT, findAllClosestVertsUV, getDistancesUV,
computeOgps_single_pair_iuv, computeOgps), the current form of facebookresearch/DensePose
detectron/datasets/densepose_cocoeval.py (findAllClosestVerts, getDistances, computeOgps).
For a ground-truth point (I*, U*, V*) and the prediction (I, U, V) at its pixel:
1. (I, U, V) with I in 1..24 -> the point of the subdivided SMPL surface (SMPL_subdiv.mat:
   Part_ID_subdiv, U_subdiv, V_subdiv; 29408 points in the official file) of part I nearest in
   (U, V) (Euclidean, first on ties); any other I (0: background or outside the box) -> none.
2. that point -> its 1-based row in the geodesic table (SMPL_SUBDIV_TRANSFORM.mat `index`,
   1..27554 officially): points duplicated along chart seams share one row.
3. d = the geodesic distance between the two rows, from Pdist_matrix.pkl ({"Pdist_matrix":
   (n(n-1)/2, 1)}), a condensed table; the official index arithmetic reduces, for 0-based rows
   a > b, to entry a(a-1)/2 + b (independent of n). d = 0 for the same row, inf if the
   prediction has no point.
4. GPS_p = exp(-d^2 / (2 kappa^2)) with kappa = Mean_Distances[CoarseParts[I*]]
   (`PART_KAPPA_2019`, the per-part normalisation since 2019; 0.255 in the 2018 paper:
   kappa="fixed"); GPS = the mean over the ground-truth points with I* in 1..24.
So a wrong but valid part is not scored 0 by itself: it costs the geodesic distance between the
two surface points (about 0 for a point across a seam, large across the body).

`GeodesicGPS` is a `DistanceFn` for hcmoco.eval.densepose.evaluate_densepose (pass
kappa=geo.kappa). There, ground-truth points with I* outside 1..24 (none in DensePose-COCO) count
with GPS 0 instead of being dropped, the only difference from `GeodesicGPS.gps`.
"""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from scipy.spatial.distance import cdist

from hcmoco.errors import HcmocoError
from hcmoco.processed.shards import NUM_PARTS
from hcmoco.eval.densepose import DENSEPOSE_KAPPA, PART_KAPPA_2019

SUBDIV_FILE = "SMPL_subdiv.mat"
TRANSFORM_FILE = "SMPL_SUBDIV_TRANSFORM.mat"
PDIST_FILE = "Pdist_matrix.pkl"
_CHUNK = 1 << 22  # bound on (part points x query points) per nearest-point block

# The official Pdist_matrix.pkl is a Python 2 pickle of a dict holding a numpy array: only
# numpy's array reconstruction may run while loading it (pickle can execute arbitrary code).
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_pdist(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            data = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise HcmocoError(f"{path}: not a readable geodesic distance table ({e})") from None
    if not isinstance(data, Mapping) or "Pdist_matrix" not in data:
        raise HcmocoError(f"{path}: expected a dict with key 'Pdist_matrix'")
    table = np.asarray(data["Pdist_matrix"], np.float64).ravel()
    n = int(round((1 + np.sqrt(1 + 8 * table.size)) / 2))
    if table.size == 0 or n * (n - 1) // 2 != table.size:
        raise HcmocoError(f"{path}: Pdist_matrix of {table.size} entries is not a condensed "
                          "pairwise table (n(n-1)/2 entries)")
    return table


def _load_mat(path: Path, keys: tuple[str, ...]) -> list[np.ndarray]:
    try:
        mat = loadmat(str(path))
    except (OSError, ValueError, NotImplementedError) as e:
        raise HcmocoError(f"{path}: not a readable MATLAB file ({e})") from None
    missing = [k for k in keys if k not in mat]
    if missing:
        raise HcmocoError(f"{path}: missing field {missing[0]!r}")
    return [np.asarray(mat[k]).ravel() for k in keys]


class GeodesicGPS:
    """The official geodesic point similarity, from the evaluator's three data files in data_dir.

    kappa: "per_part" (default, `PART_KAPPA_2019`), "fixed" (0.255) or a number.
    """

    def __init__(self, data_dir: str | Path, kappa: str | float = "per_part"):
        data_dir = Path(data_dir)
        for name in (SUBDIV_FILE, TRANSFORM_FILE, PDIST_FILE):
            if not (data_dir / name).is_file():
                raise HcmocoError(f"{data_dir / name}: missing DensePose evaluation file "
                                  "(from dl.fbaipublicfiles.com/densepose/data/)")
        part, u, v = _load_mat(data_dir / SUBDIV_FILE, ("Part_ID_subdiv", "U_subdiv", "V_subdiv"))
        (index,) = _load_mat(data_dir / TRANSFORM_FILE, ("index",))
        self.table = _load_pdist(data_dir / PDIST_FILE)
        if not part.size == u.size == v.size == index.size:
            raise HcmocoError(f"{data_dir / TRANSFORM_FILE}: 'index' has {index.size} entries for "
                              f"{part.size} points of {SUBDIV_FILE}")
        self.num_rows = int(round((1 + np.sqrt(1 + 8 * self.table.size)) / 2))
        index = index.astype(np.int64)
        if index.size and (index.min() < 1 or index.max() > self.num_rows):
            raise HcmocoError(f"{data_dir / TRANSFORM_FILE}: 'index' outside 1..{self.num_rows}, "
                              f"the rows of {PDIST_FILE}")
        self.row_of_point = index
        part = part.astype(np.int64)
        uv = np.stack([u, v], 1).astype(np.float64)
        ids = np.arange(1, part.size + 1)
        self._parts = [(uv[part == p], ids[part == p]) for p in range(1, NUM_PARTS + 1)]
        if kappa == "per_part":
            self.kappa = PART_KAPPA_2019
        elif kappa == "fixed":
            self.kappa = DENSEPOSE_KAPPA
        elif isinstance(kappa, (int, float)) and kappa > 0:
            self.kappa = float(kappa)
        else:
            raise HcmocoError(f"kappa must be 'per_part', 'fixed' or a positive number, got {kappa!r}")

    def closest_points(self, I, U, V) -> np.ndarray:
        """(N,) 1-based point of the subdivided surface nearest to each (I, U, V); -1 where I is
        not a part 1..24 or the part has no points."""
        I = np.asarray(I).astype(np.int64).ravel()
        uv = np.stack([np.asarray(U, np.float64).ravel(), np.asarray(V, np.float64).ravel()], 1)
        out = np.full(I.shape, -1, np.int64)
        for p, (part_uv, part_ids) in enumerate(self._parts, start=1):
            sel = np.flatnonzero(I == p)
            if sel.size == 0 or part_ids.size == 0:
                continue
            step = max(1, _CHUNK // part_ids.size)
            for s in range(0, sel.size, step):
                q = sel[s:s + step]
                out[q] = part_ids[np.argmin(cdist(part_uv, uv[q]), axis=0)]
        return out

    def table_rows(self, I, U, V) -> np.ndarray:
        """(N,) 1-based row of the geodesic table for each (I, U, V); 0 where there is none."""
        pts = self.closest_points(I, U, V)
        return np.where(pts > 0, self.row_of_point[np.maximum(pts, 1) - 1], 0)

    def row_distances(self, rows_a, rows_b) -> np.ndarray:
        """Geodesic distances between 1-based table rows; inf where either row is 0."""
        a, b = np.asarray(rows_a, np.int64), np.asarray(rows_b, np.int64)
        hi, lo = np.maximum(a, b) - 1, np.minimum(a, b) - 1
        valid = (a > 0) & (b > 0)
        k = np.where(valid & (hi > lo), hi * (hi - 1) // 2 + lo, 0)
        d = self.table[k]
        return np.where(valid, np.where(hi == lo, 0.0, d), np.inf)

    def distances(self, gi, gu, gv, di, du, dv) -> np.ndarray:
        """(N,) geodesic distance between ground-truth and predicted (I, U, V); inf where either
        has no surface point (the `DistanceFn` of hcmoco.eval.densepose)."""
        return self.row_distances(self.table_rows(gi, gu, gv), self.table_rows(di, du, dv))

    __call__ = distances

    def point_gps(self, gt_points, pred_iuv) -> np.ndarray:
        """Per ground-truth point with I* in 1..24: exp(-d^2 / (2 kappa^2)).
        gt_points: (I, U, V) arrays or a DensePose-COCO annotation (dp_I, dp_U, dp_V);
        pred_iuv: (I, U, V) predicted at those points, U, V in [0, 1]."""
        if isinstance(gt_points, Mapping):
            gt_points = (gt_points["dp_I"], gt_points["dp_U"], gt_points["dp_V"])
        gi, gu, gv = (np.asarray(a).ravel() for a in gt_points)
        di, du, dv = (np.asarray(a).ravel() for a in pred_iuv)
        if not gi.size == gu.size == gv.size == di.size == du.size == dv.size:
            raise ValueError("ground-truth points and predictions differ in length")
        keep = (gi >= 1) & (gi <= NUM_PARTS)
        gi = gi[keep].astype(np.int64)
        d = self.distances(gi, gu[keep], gv[keep], di[keep], du[keep], dv[keep])
        kappa = self.kappa if np.ndim(self.kappa) == 0 else np.asarray(self.kappa)[gi]
        return np.exp(-d ** 2 / (2.0 * np.asarray(kappa, np.float64) ** 2))

    def gps(self, gt_points, pred_iuv) -> float:
        """GPS of one person: the mean of `point_gps` (0 without valid ground-truth points)."""
        values = self.point_gps(gt_points, pred_iuv)
        return float(values.mean()) if values.size else 0.0
