"""SynthHuman labels agree with each other on rendered samples of every domain."""
from functools import lru_cache

import numpy as np
import pytest

from hcmoco.synth import DOMAINS, LAYOUT_EDGES, LAYOUTS, PART_NAMES, iuv_to_surface, render_batch
from hcmoco.synth.body import joint_radii, segment_half_axes
from hcmoco.synth.domains import subject_identity
from hcmoco.synth.render import VISIBILITY_MARGIN
from hcmoco.synth.skeleton import LAYOUT_JOINT_INDEX

RES = 56
SUBJECTS = {"train": 5, "test": 3}
COUNT = 16
EXPECTED = {"rgb": (np.uint8, (RES, RES, 3)), "depth": (np.uint16, (RES, RES)), "parsing": (np.uint8, (RES, RES)),
            "iuv": (np.uint8, (RES, RES, 3)), "surface": (np.float16, (RES, RES, 3)), "cam": (np.float32, (4,)),
            "subject": (np.int32, ())}


@lru_cache(maxsize=None)
def batch(domain: str, split: str = "train") -> dict:
    return render_batch(domain, 3, split, np.arange(COUNT), RES, SUBJECTS)


def window(image: np.ndarray, x: float, y: float) -> np.ndarray:
    """3x3 neighbourhood of the pixel containing (x, y)."""
    c, r = int(np.floor(x)), int(np.floor(y))
    return image[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2]


def radii_mm(domain: str, subject: int) -> np.ndarray:
    shape, _ = subject_identity(3, domain, int(subject))
    return 1000.0 * joint_radii(segment_half_axes(shape))[LAYOUT_JOINT_INDEX[DOMAINS[domain].layout]]


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_fields_have_the_contracted_dtypes_and_shapes(domain):
    spec, out = DOMAINS[domain], batch(domain)
    assert set(out) == set(spec.fields) | {"subject", "cam"}
    joints = len(LAYOUTS[spec.layout])
    for key, value in out.items():
        dtype, shape = EXPECTED.get(key, (np.float32, (joints, 3)))
        assert value.dtype == dtype and value.shape == (COUNT,) + shape, key


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_kp2d_is_the_projection_of_the_joints_and_v0_means_outside(domain):
    out = batch(domain)
    kp, cam = out["kp2d"].astype(np.float64), out["cam"].astype(np.float64)
    inside = (kp[..., 0] >= 0) & (kp[..., 0] < RES) & (kp[..., 1] >= 0) & (kp[..., 1] < RES)
    assert np.array_equal(kp[..., 2] == 0, ~inside)
    assert set(np.unique(kp[..., 2])) <= {0.0, 1.0, 2.0}
    assert inside.mean() > 0.95  # the person is cropped, not cut off
    if "kp3d" in out:
        xyz = out["kp3d"].astype(np.float64)
        assert np.all(xyz[..., 2] > 1500.0)
        proj = np.stack([cam[:, None, 0] * xyz[..., 0] / xyz[..., 2] + cam[:, None, 2],
                         cam[:, None, 1] * xyz[..., 1] / xyz[..., 2] + cam[:, None, 3]], axis=-1)
        np.testing.assert_allclose(proj, kp[..., :2], atol=1e-3)


@pytest.mark.parametrize("domain", ["synth_ntu", "synth_parsing4k"])
def test_masked_depth_covers_exactly_the_person(domain):
    out = batch(domain)
    depth = out["depth"]
    assert np.all(depth[depth > 0] > 1000)  # metres away, not a stray reading
    if "parsing" in out:
        assert np.array_equal(out["parsing"] > 0, depth > 0)
    assert np.all((depth > 0).mean(axis=(1, 2)) > 0.05)


def test_depth_with_background_has_a_scene_and_holes():
    depth = batch("synth_itop")["depth"]
    assert (depth > 0).mean() > 0.7
    assert 0.0 < (depth == 0).mean() < 0.25
    assert np.percentile(depth[depth > 0], 99) > np.percentile(depth[depth > 0], 5) + 500  # wall behind


def test_iuv_matches_parsing_and_surface_matches_iuv():
    out = batch("synth_densepose")
    iuv, parsing, surface = out["iuv"], out["parsing"], out["surface"].astype(np.float64)
    assert np.array_equal(iuv[..., 0], parsing)
    background = parsing == 0
    assert not iuv[background].any() and not surface[background].any()
    assert set(np.unique(parsing)) <= set(range(len(PART_NAMES)))
    assert len(np.unique(parsing)) > 15  # most parts appear across the batch
    for channel in (1, 2):  # U and V spread over their whole range
        values = iuv[..., channel][~background]
        assert values.min() < 15 and values.max() > 240 and 60 < np.median(values) < 200
    fg = ~background
    expected = iuv_to_surface(iuv[..., 0][fg], iuv[..., 1][fg] / 255.0, iuv[..., 2][fg] / 255.0)
    error = np.linalg.norm(expected - surface[fg], axis=1)
    assert np.quantile(error, 0.99) < 0.01  # metres; 8-bit U, V and float16 only
    assert np.abs(surface[fg]).max() < 1.2


def test_visible_joints_lie_on_the_body_at_its_depth():
    domain = "synth_ntu"
    out = batch(domain)
    seen = 0
    for kp, xyz, depth, subject in zip(out["kp2d"], out["kp3d"], out["depth"], out["subject"]):
        radii = radii_mm(domain, subject)
        for (x, y, v), z, r in zip(kp, xyz[:, 2], radii):
            if v != 2:
                continue
            seen += 1
            near = window(depth, x, y).astype(np.float64)
            assert (near > 0).any(), "a visible joint must lie on the person"
            tolerance = r + 1000 * VISIBILITY_MARGIN + 30  # + sensor noise
            assert np.any((near > 0) & (near > z - tolerance) & (near < z + 30)), (x, y, z, near)
    assert seen > COUNT * 8


@pytest.mark.parametrize("domain", ["synth_h36m", "synth_densepose", "synth_parsing4k"])
def test_visible_joints_lie_on_the_parsing_foreground(domain):
    out = batch(domain)
    for kp, parsing in zip(out["kp2d"], out["parsing"]):
        for x, y, v in kp:
            if v == 2:
                assert window(parsing, x, y).any()


def test_occluded_joints_have_a_surface_clearly_in_front():
    domain = "synth_ntu"
    out = batch(domain)
    occluded = 0
    for kp, xyz, depth, subject in zip(out["kp2d"], out["kp3d"], out["depth"], out["subject"]):
        radii = radii_mm(domain, subject)
        for (x, y, v), z, r in zip(kp, xyz[:, 2], radii):
            if v == 1:
                occluded += 1
                near = window(depth, x, y).astype(np.float64)
                assert np.any((near > 0) & (near < z - r)), (x, y, z, r, near)
    assert occluded > 5


def test_left_and_right_joints_land_on_left_and_right_parts():
    out = batch("synth_densepose")
    names = LAYOUTS["coco17"]
    side = np.array([+1 if "left" in p else -1 if "right" in p else 0 for p in PART_NAMES])
    agree = disagree = 0
    for kp, parsing in zip(out["kp2d"], out["parsing"]):
        for name, (x, y, v) in zip(names, kp):
            if v == 2 and name.split("_")[-1] in ("wrist", "knee", "ankle"):
                votes = side[window(parsing, x, y)].sum() * (1 if name.startswith("l_") else -1)
                agree, disagree = agree + (votes > 0), disagree + (votes < 0)
    assert agree > COUNT * 3 and disagree <= 0.05 * agree  # a left/right swap would invert this


def test_layout_edges_index_their_layouts():
    for layout, edges in LAYOUT_EDGES.items():
        assert all(0 <= a < len(LAYOUTS[layout]) and 0 <= b < len(LAYOUTS[layout]) for a, b in edges)
        assert len({a for e in edges for a in e}) == len(LAYOUTS[layout])  # a connected skeleton
