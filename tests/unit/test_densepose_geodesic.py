"""Geodesic GPS against the official evaluator's definition, on a tiny mesh written in the format
of its data files (SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat, Pdist_matrix.pkl)."""
import pickle

import numpy as np
import pytest
from scipy.io import savemat

from hcmoco.errors import HcmocoError
from hcmoco.eval import PART_KAPPA_2019, evaluate_densepose
from hcmoco.eval.densepose_geodesic import (PDIST_FILE, SUBDIV_FILE, TRANSFORM_FILE,
                                            GeodesicGPS)

# Surface points 1..7 (1-based): part 1 has the corners of its chart, part 2 two points and
# part 3 one; point 5 (part 2, UV (0, 0)) lies on the seam with point 2 (part 1, UV (1, 0)).
PART = [1, 1, 1, 1, 2, 2, 3]
UV = [(0, 0), (1, 0), (0, 1), (1, 1), (0, 0), (1, 1), (0.5, 0.5)]
ROW = [1, 2, 3, 4, 2, 5, 6]  # 1-based rows of the 6-row geodesic table
GEO = np.array([  # symmetric geodesic distances (metres) between the 6 rows
    [0.0, 0.1, 0.2, 0.25, 0.3, 1.5],
    [0.1, 0.0, 0.22, 0.2, 0.15, 1.4],
    [0.2, 0.22, 0.0, 0.1, 0.35, 1.6],
    [0.25, 0.2, 0.1, 0.0, 0.12, 1.55],
    [0.3, 0.15, 0.35, 0.12, 0.0, 1.3],
    [1.5, 1.4, 1.6, 1.55, 1.3, 0.0]])


def official_offset(i: int, j: int, n: int) -> int:
    """The table offset of 0-based rows i != j, transcribed from the official getDistancesUV."""
    if j > i:
        i, j = j, i
    i, j = n - i - 1, n - j - 1
    k = (n * (n - 1) / 2) - (n - i) * ((n - i) - 1) / 2 + j - i - 1
    return int((n * n - n) / 2 - k - 1)


def condensed(geo: np.ndarray) -> np.ndarray:
    n = len(geo)
    table = np.full((n * (n - 1) // 2, 1), np.nan)
    for i in range(n):
        for j in range(n):
            if i != j:
                table[official_offset(i, j, n), 0] = geo[i, j]
    assert not np.isnan(table).any()
    return table


def write_data(d, part=PART, uv=UV, row=ROW, table=None, pdist_payload=None):
    uv = np.asarray(uv, float)
    savemat(d / SUBDIV_FILE, {"Part_ID_subdiv": np.asarray(part, float)[:, None],
                              "U_subdiv": uv[:, :1], "V_subdiv": uv[:, 1:]})
    savemat(d / TRANSFORM_FILE, {"index": np.asarray(row, float)[:, None]})
    payload = {"Pdist_matrix": condensed(GEO) if table is None else table}
    with open(d / PDIST_FILE, "wb") as f:
        pickle.dump(payload if pdist_payload is None else pdist_payload, f, protocol=2)
    return d


@pytest.fixture
def geo(tmp_path):
    return GeodesicGPS(write_data(tmp_path))


def test_identical_prediction_scores_one(geo):
    gt = ([1, 1, 2, 3, 1], [0.0, 0.9, 1.0, 0.4, 0.3], [0.0, 0.1, 0.8, 0.6, 0.9])
    assert geo.gps(gt, gt) == 1.0
    ann = {"dp_I": gt[0], "dp_U": gt[1], "dp_V": gt[2]}
    assert geo.gps(ann, gt) == 1.0


def test_nearest_point_and_seam(geo):
    # UV nearest within the named part only; ties go to the first point
    assert geo.closest_points([1, 1, 2, 3, 0, 25], [0.4, 0.9, 0.2, 0.9, 0.5, 0.5],
                              [0.45, 0.2, 0.1, 0.0, 0.5, 0.5]).tolist() == [1, 2, 5, 7, -1, -1]
    assert geo.closest_points([1], [0.5], [0.5]).tolist() == [1]
    # another part, same surface row across the seam: distance 0, GPS 1
    assert geo.gps(([2], [0.0], [0.0]), ([1], [1.0], [0.0])) == 1.0


def test_known_offset_follows_exp_formula(geo, tmp_path):
    # ground truth at point 1, prediction snaps to point 2: the fixture's distance 0.1 m,
    # kappa of part 1 (torso) 0.351 in the per-part normalisation
    gt, pred = ([1], [0.0], [0.0]), ([1], [0.9], [0.1])
    assert geo.distances(*gt, *pred).tolist() == [0.1]
    assert geo.gps(gt, pred) == pytest.approx(np.exp(-0.1 ** 2 / (2 * 0.351 ** 2)))
    assert PART_KAPPA_2019[1] == 0.351
    fixed = GeodesicGPS(tmp_path, kappa="fixed")
    assert fixed.gps(gt, pred) == pytest.approx(np.exp(-0.1 ** 2 / (2 * 0.255 ** 2)))
    # the kappa follows the ground-truth part: part 3 (a hand) 0.107
    assert geo.gps(([3], [0.5], [0.5]), ([2], [1.0], [1.0])) == pytest.approx(
        np.exp(-1.3 ** 2 / (2 * 0.107 ** 2)))


def test_wrong_part_and_background(geo):
    gt = ([1, 1], [0.0, 1.0], [0.0, 1.0])
    # background (or a point outside the detection) contributes exactly 0
    assert geo.point_gps(gt, ([0, 1], [0.0, 1.0], [0.0, 1.0])).tolist() == [0.0, 1.0]
    assert geo.gps(gt, ([0, 1], [0.0, 1.0], [0.0, 1.0])) == 0.5
    # a wrong part far across the body: exp of its geodesic distance, about 0
    far = geo.point_gps(([1], [0.0], [0.0]), ([3], [0.5], [0.5]))
    assert far[0] == pytest.approx(np.exp(-1.5 ** 2 / (2 * 0.351 ** 2))) and far[0] < 1e-3
    # ground-truth points outside 1..24 are dropped, as the official code does
    assert geo.gps(([0, 1], [0.0, 0.0], [0.0, 0.0]), ([1, 1], [0.0, 0.0], [0.0, 0.0])) == 1.0
    assert geo.gps(([], [], []), ([], [], [])) == 0.0


def test_table_index_matches_official_arithmetic(geo):
    rows = np.arange(1, 7)
    a, b = np.meshgrid(rows, rows, indexing="ij")
    np.testing.assert_allclose(geo.row_distances(a.ravel(), b.ravel()), GEO.ravel())
    assert np.isinf(geo.row_distances([0, 3], [2, 0])).all()


def test_plugs_into_the_coco_style_evaluator(geo):
    I, U, V = [1, 1, 2, 1], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]
    ann = {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [2.0, 2.0, 4.0, 4.0],
           "area": 16.0, "dp_I": I, "dp_U": U, "dp_V": V,
           "dp_x": [32.0, 96.0, 160.0, 224.0], "dp_y": [32.0, 96.0, 160.0, 224.0]}
    gt = {"images": [{"id": 1, "height": 8, "width": 8}], "annotations": [ann],
          "categories": [{"id": 1, "name": "person"}]}
    iuv = np.zeros((4, 4, 3))
    for k in range(4):  # the box's 4x4 map holds the ground truth on its diagonal
        iuv[k, k] = (I[k], U[k], V[k])
    det = {"image_id": 1, "category_id": 1, "bbox": [2.0, 2.0, 4.0, 4.0], "score": 0.9, "iuv": iuv}
    out = evaluate_densepose(gt, [det], geo, kappa=geo.kappa)
    assert out["AP"] == pytest.approx(1.0)
    iuv[3, 3] = (2, 1.0, 1.0)  # one point 0.35 m off (row 3 -> row 5): GPS 0.902
    sim = (3 + np.exp(-0.35 ** 2 / (2 * 0.351 ** 2))) / 4
    assert 0.9 < sim < 0.95
    out = evaluate_densepose(gt, [det], geo, kappa=geo.kappa)
    assert out["AP50"] == pytest.approx(1.0) and out["AP"] == pytest.approx(0.9)


@pytest.mark.parametrize("name", [SUBDIV_FILE, TRANSFORM_FILE, PDIST_FILE])
def test_missing_file_names_it(tmp_path, name):
    (write_data(tmp_path) / name).unlink()
    with pytest.raises(HcmocoError, match=name) as err:
        GeodesicGPS(tmp_path)
    assert "\n" not in str(err.value)


def test_malformed_files_are_one_line_errors(tmp_path):
    write_data(tmp_path, table=np.zeros((7, 1)))
    with pytest.raises(HcmocoError, match=PDIST_FILE):
        GeodesicGPS(tmp_path)
    write_data(tmp_path, row=ROW[:-1])
    with pytest.raises(HcmocoError, match=TRANSFORM_FILE):
        GeodesicGPS(tmp_path)
    write_data(tmp_path, row=[1, 2, 3, 4, 2, 5, 9])
    with pytest.raises(HcmocoError, match="outside 1..6"):
        GeodesicGPS(tmp_path)
    savemat(tmp_path / SUBDIV_FILE, {"Part_ID_subdiv": np.ones((7, 1))})
    with pytest.raises(HcmocoError, match="U_subdiv"):
        GeodesicGPS(tmp_path)


def test_pdist_pickle_only_loads_arrays(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))
    write_data(tmp_path, pdist_payload={"Pdist_matrix": Payload()})
    with pytest.raises(HcmocoError, match="refusing to load .*print"):
        GeodesicGPS(tmp_path)
    # a pickle written by numpy 1.x (numpy.core module path) still loads
    old = pickle.dumps({"Pdist_matrix": condensed(GEO)}, protocol=2).replace(
        b"numpy._core.multiarray", b"numpy.core.multiarray")
    (tmp_path / PDIST_FILE).write_bytes(old)
    assert GeodesicGPS(tmp_path).gps(([1], [0.0], [0.0]), ([1], [1.0], [0.0])) == pytest.approx(
        np.exp(-0.1 ** 2 / (2 * 0.351 ** 2)))
