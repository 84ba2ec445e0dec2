"""SynthHuman body model: skeleton, shapes, the (I, U, V) parametrisation and its template."""
import numpy as np
import pytest

from hcmoco.synth import LAYOUTS, PART_NAMES, iuv_to_surface
from hcmoco.synth.body import SEGMENTS, build_primitives, surface_coordinates, template_primitives
from hcmoco.synth.domains import subject_identity
from hcmoco.synth.skeleton import (JOINT_INDEX, LAYOUT_JOINT_INDEX, ROTATION_KEYS, forward_kinematics,
                                        limb_rotation, mean_shape, rest_pose, rot_x, sample_pose, sample_shape)


def random_surface_points(rng, count):
    """Random (segment, scaled local point) on the capsules' surfaces."""
    segment = rng.integers(len(SEGMENTS), size=count)
    tpl = template_primitives()
    top = tpl.length[segment] / tpl.half_axes[segment, 1]
    y = rng.uniform(-1.0, top + 1.0)
    beyond = y - np.clip(y, 0.0, top)
    radial = np.sqrt(1.0 - beyond**2)
    angle = rng.uniform(-np.pi, np.pi, size=count)
    return segment, np.stack([radial * np.cos(angle), y, radial * np.sin(angle)], axis=1)


def test_iuv_to_surface_inverts_the_renderers_parametrisation_on_the_template():
    rng = np.random.default_rng(0)
    segment, q = random_surface_points(rng, 5000)
    tpl = template_primitives()
    part, u, v, _ = surface_coordinates(segment, q, tpl.half_axes, tpl.length)
    local = q * tpl.half_axes[segment]
    point = tpl.origin[segment] + np.einsum("nij,nj->ni", tpl.rotation[segment], local)
    head_boundary = (part >= 23) & (np.abs(v - 0.22) < 1e-9)
    np.testing.assert_allclose(iuv_to_surface(part, u, v)[~head_boundary], point[~head_boundary], atol=1e-9)
    assert u.min() >= 0 and u.max() <= 1 and v.min() >= 0 and v.max() <= 1


@pytest.mark.parametrize("part", range(1, 25))
def test_iuv_to_surface_is_continuous_within_a_part(part):
    u, v = np.meshgrid(np.linspace(0.0, 1.0, 101), np.linspace(0.0, 1.0, 101), indexing="ij")
    points = iuv_to_surface(np.full(u.shape, part), u, v)
    step_u = np.linalg.norm(np.diff(points, axis=0), axis=-1)
    step_v = np.linalg.norm(np.diff(points, axis=1), axis=-1)
    if part >= 23:  # the head is neck (V < 0.22) + skull: skip the one seam between them
        step_v = np.delete(step_v, [21, 22], axis=1)
    assert step_u.max() < 0.02 and step_v.max() < 0.03  # metres per 0.01 of U or V
    assert np.all(np.isfinite(points)) and not np.any(np.all(points == 0, axis=-1))


def test_parts_occupy_distinct_regions_on_the_correct_side():
    u, v = np.meshgrid(np.linspace(0.05, 0.95, 19), np.linspace(0.05, 0.95, 19))
    centres = np.array([iuv_to_surface(np.full(u.shape, p), u, v).reshape(-1, 3).mean(0) for p in range(1, 25)])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(24)
    assert gaps.min() > 0.02
    for p, centre in enumerate(centres, start=1):
        name = PART_NAMES[p]
        if "left" in name:  # body frame x = the person's left
            assert centre[0] > 0.02, name
        if "right" in name:
            assert centre[0] < -0.02, name
    for back, front in ((1, 2), (7, 9), (8, 10), (11, 13), (12, 14), (15, 17), (16, 18), (19, 21), (20, 22)):
        assert centres[front - 1][2] > centres[back - 1][2], PART_NAMES[front]  # front faces +z
    assert np.all(iuv_to_surface(np.zeros(3, int), np.ones(3) * 0.5, np.ones(3) * 0.5) == 0)


def test_same_body_location_gets_the_same_iuv_for_different_people():
    rng = np.random.default_rng(1)
    segment, q = random_surface_points(rng, 500)
    tpl = template_primitives()
    reference = surface_coordinates(segment, q, tpl.half_axes, tpl.length)
    for seed in range(3):
        shape = sample_shape(np.random.default_rng(seed))
        joints, frames = forward_kinematics(shape, sample_pose(np.random.default_rng(seed))[1])
        prims = build_primitives(joints, frames, shape)
        other = surface_coordinates(segment, q, prims.half_axes, prims.length)
        assert np.array_equal(other[0], reference[0])
        np.testing.assert_allclose(other[1], reference[1], atol=1e-12)
        # V is normalised along each segment: equal where the capsules have equal proportions
        assert np.corrcoef(other[2], reference[2])[0, 1] > 0.99


def test_forward_kinematics_rest_pose_is_upright_and_symmetric():
    joints, _ = forward_kinematics(mean_shape(), rest_pose())
    j = lambda name: joints[JOINT_INDEX[name]]  # noqa: E731
    assert j("head_top")[1] > j("neck")[1] > j("pelvis")[1] > j("r_knee")[1] > j("r_ankle")[1]
    for name in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        left, right = j(f"l_{name}"), j(f"r_{name}")
        np.testing.assert_allclose(left * [-1, 1, 1], right, atol=1e-12)
        assert left[0] > 0  # x is the person's left
    assert j("nose")[2] > j("head_centre")[2] and j("r_toe")[2] > j("r_ankle")[2]  # facing +z
    height = j("head_top")[1] - j("r_ankle")[1]
    assert 1.5 < height < 1.8


def test_joint_angles_move_limbs_the_documented_way():
    shape = mean_shape()
    pose = {k: np.eye(3) for k in ROTATION_KEYS}
    pose["r_hip"] = limb_rotation(80.0, 0.0, 0.0, "r")  # hip flexion: the thigh swings forward
    pose["l_shoulder"] = limb_rotation(0.0, 80.0, 0.0, "l")  # abduction: the arm goes out to the side
    pose["lumbar"] = rot_x(30.0)  # spine flexion: bends forward
    joints, _ = forward_kinematics(shape, pose)
    j = lambda name: joints[JOINT_INDEX[name]]  # noqa: E731
    assert j("r_knee")[2] - j("r_hip")[2] > 0.3
    assert j("l_elbow")[0] - j("l_shoulder")[0] > 0.25
    assert j("neck")[2] > 0.1


def test_sampled_people_and_poses_are_plausible():
    rng = np.random.default_rng(2)
    families = set()
    for _ in range(60):
        shape = sample_shape(rng)
        assert 1.5 <= shape.height <= 1.95
        family, pose = sample_pose(rng)
        families.add(family)
        joints, _ = forward_kinematics(shape, pose)
        assert np.all(np.isfinite(joints)) and np.ptp(joints[:, 1]) > 0.6
    assert families == {"standing", "walking", "reaching", "bending", "sitting"}


def test_train_and_test_people_differ_and_domains_have_their_own_people():
    train = np.array([subject_identity(0, "synth_ntu", s)[0].as_vector() for s in range(10)])
    test = np.array([subject_identity(0, "synth_ntu", s)[0].as_vector() for s in range(10, 14)])
    other = np.array([subject_identity(0, "synth_itop", s)[0].as_vector() for s in range(10)])
    assert not np.isin(test[:, 0], train[:, 0]).any()  # no shared heights, let alone shapes
    assert not np.isin(other[:, 0], train[:, 0]).any()
    assert train[:, 0].std() > 0.05


def test_layouts_have_the_documented_joint_counts_and_orders():
    assert {k: len(v) for k, v in LAYOUTS.items()} == {"itop15": 15, "mpii16": 16, "coco17": 17}
    assert LAYOUTS["coco17"][:5] == ["nose", "l_eye", "r_eye", "l_ear", "r_ear"]
    assert LAYOUTS["itop15"][0] == "head" and LAYOUTS["itop15"][8] == "torso"
    assert LAYOUTS["mpii16"][6:10] == ["pelvis", "thorax", "upper_neck", "head_top"]
    assert all(len(set(idx)) == len(idx) for idx in LAYOUT_JOINT_INDEX.values())
