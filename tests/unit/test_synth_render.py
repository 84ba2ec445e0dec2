"""SynthHuman ray casting: camera conventions and analytic intersections against brute force."""
import numpy as np

from hcmoco.synth.body import Primitives, build_primitives
from hcmoco.synth.render import (Camera, box_depth, capsule_depth, hit_geometry, intersect_unit_capsule,
                                      plane_depth, raycast_capsules, sample_view)
from hcmoco.synth.skeleton import forward_kinematics, sample_pose, sample_shape


def capsule_distance(q, top):
    """Signed distance (scaled frame) of points q (..., 3) to the unit capsule with axis 0..top."""
    axis = np.zeros_like(q)
    axis[..., 1] = np.clip(q[..., 1], 0.0, top)
    return np.linalg.norm(q - axis, axis=-1) - 1.0


def test_pixel_centres_are_at_integer_plus_half():
    camera = Camera(50.0, 52.0, 20.3, 18.7, 40)
    rows, cols = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    xy = camera.project(2.5 * camera.directions(rows, cols))
    np.testing.assert_allclose(xy[..., 0], cols + 0.5, atol=1e-9)
    np.testing.assert_allclose(xy[..., 1], rows + 0.5, atol=1e-9)


def test_capsule_entry_is_on_the_surface_and_the_ray_is_outside_before_it():
    rng = np.random.default_rng(0)
    top = 2.5
    e = rng.uniform(-6, 6, size=(3, 4000))
    target = rng.uniform([[-1.5], [-1.5], [-1.5]], [[1.5], [4.0], [1.5]], size=(3, 4000))
    d = target - e  # aimed near the capsule so that about half the rays hit
    t = intersect_unit_capsule(tuple(e), tuple(d), top)
    hit = np.isfinite(t)
    assert 0.05 < hit.mean() < 0.95
    q = (e + t * d).T[hit]
    np.testing.assert_allclose(capsule_distance(q, top), 0.0, atol=1e-9)
    steps = np.linspace(0.0, 1.0, 50)[:, None]  # along the ray up to the entry (or far, on a miss)
    reach = np.where(hit, t, 20.0)
    samples = e.T[None] + (steps * reach)[..., None] * d.T[None]
    outside = capsule_distance(samples[:-1], top) > -1e-9
    starts_outside = capsule_distance(e.T, top) > 0
    assert np.all(outside[:, starts_outside])


def test_windowed_raycast_equals_brute_force_over_the_whole_image():
    rng = np.random.default_rng(1)
    for _ in range(3):
        shape = sample_shape(rng)
        joints, frames = forward_kinematics(shape, sample_pose(rng)[1])
        body = build_primitives(joints, frames, shape)
        view = sample_view(rng, body)
        prims = body.transformed(*view.body_to_camera)
        camera = Camera(60.0, 60.0, 24.0, 20.0, 48)
        depth, label = raycast_capsules(prims, camera)
        rows, cols = np.meshgrid(np.arange(48), np.arange(48), indexing="ij")
        rays = camera.directions(rows, cols)
        brute = np.stack([capsule_depth(prims, s, rays) for s in range(len(prims.length))])
        np.testing.assert_array_equal(depth, brute.min(0))
        assert np.array_equal(label, np.where(np.isfinite(depth), brute.argmin(0), -1))
        hits = hit_geometry(prims, camera, depth, label)
        top = (prims.length / prims.half_axes[:, 1])[hits.segment]
        np.testing.assert_allclose(capsule_distance(hits.local, top), 0.0, atol=1e-7)
        view_dir = camera.directions(hits.rows, hits.cols)
        assert np.all(np.sum(hits.normal * view_dir, axis=1) < 1e-9)  # normals face the camera


def test_box_and_plane_depths():
    rays = np.array([[0.0, 0.0, 1.0], [0.5, 0.0, 1.0], [0.0, -0.2, 1.0]])
    box = box_depth(np.array([0.0, 0.0, 3.0]), np.eye(3), np.array([0.5, 0.5, 0.5]), rays)
    np.testing.assert_allclose(box, [2.5, np.inf, 2.5])
    floor = plane_depth(np.array([0.0, -1.0, 0.0]), -1.0, rays)  # y = 1 (below the camera)
    np.testing.assert_allclose(floor, [np.inf, np.inf, np.inf])
    ceiling = plane_depth(np.array([0.0, -1.0, 0.0]), 1.0, rays)  # y = -1, above
    np.testing.assert_allclose(ceiling, [np.inf, np.inf, 5.0])


def test_transformed_primitives_keep_their_shape():
    prims = Primitives(np.zeros((1, 3)), np.eye(3)[None], np.array([[0.1, 0.2, 0.3]]), np.array([0.5]))
    moved = prims.transformed(np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), np.array([0, 0, 4.0]))
    np.testing.assert_allclose(moved.origin, [[0, 0, 4.0]])
    np.testing.assert_allclose(moved.axis_aligned_half_extent(), [[0.2, 0.1, 0.3]])
