"""Ray casting for SynthHuman: camera placement, the top-down-crop pinhole camera, analytic
ray-capsule / ray-box / ray-plane intersection, per-pixel surface geometry, keypoint visibility.

Camera frame: metres, x right, y down, z forward; a pixel ray is t * d with
d = ((col + 0.5 - cx) / fx, (row + 0.5 - cy) / fy, 1), so the ray parameter t is the depth z.
All per-pixel work is elementwise numpy (einsum only over fixed tiny axes), so a pixel's value
does not depend on how many samples are rendered together.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hcmoco.synth.body import Primitives
from hcmoco.synth.skeleton import compose, rot_y

VISIBILITY_MARGIN = 0.03  # metres a first hit may lie in front of a joint beyond its radius
_TINY = 1e-30


@dataclass(frozen=True)
class Camera:
    fx: float
    fy: float
    cx: float
    cy: float
    size: int  # square image, pixels

    def directions(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(..., 3) ray directions (z = 1) through pixel centres of rows/cols (broadcast)."""
        x = (cols + 0.5 - self.cx) / self.fx
        y = (rows + 0.5 - self.cy) / self.fy
        x, y = np.broadcast_arrays(x, y)
        return np.stack([x, y, np.ones_like(x)], axis=-1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) pixel coordinates (x, y) of camera-frame points (..., 3)."""
        return np.stack([self.fx * points[..., 0] / points[..., 2] + self.cx,
                         self.fy * points[..., 1] / points[..., 2] + self.cy], axis=-1)

    def as_array(self) -> np.ndarray:
        return np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float32)


@dataclass(frozen=True)
class View:
    """Rigid transforms (p' = R p + t) body->world and world->camera; world: y up, floor y = 0."""
    body_to_world: tuple[np.ndarray, np.ndarray]
    world_to_camera: tuple[np.ndarray, np.ndarray]

    @property
    def body_to_camera(self) -> tuple[np.ndarray, np.ndarray]:
        (rb, tb), (rc, tc) = self.body_to_world, self.world_to_camera
        return compose(rc, rb), np.einsum("ij,j->i", rc, tb) + tc


def segment_ends(prims: Primitives) -> tuple[np.ndarray, np.ndarray]:
    """(S,3) start and end points of every capsule axis."""
    return prims.origin, prims.origin + prims.rotation[:, :, 1] * prims.length[:, None]


def sample_view(rng: np.random.Generator, body: Primitives) -> View:
    """Stand the posed body (body frame) on the floor with a random yaw; a Kinect-like camera
    2-4.5 m away at 0.6-2 m height aims near the person (small yaw offset, pitch and roll)."""
    start, end = segment_ends(body)
    extent = body.axis_aligned_half_extent()
    floor_y = float(np.min(np.minimum(start[:, 1], end[:, 1]) - extent[:, 1]))
    top_y = float(np.max(np.maximum(start[:, 1], end[:, 1]) + extent[:, 1]))
    yaw = float(rng.uniform(0.0, 360.0))  # 0: facing the camera
    body_to_world = (rot_y(yaw + 180.0), np.array([0.0, -floor_y, 0.0]))
    distance, height = float(rng.uniform(2.0, 4.5)), float(rng.uniform(0.6, 2.0))
    aim_height = 0.5 * (top_y - floor_y) + float(rng.normal(0.0, 0.05))
    pitch = math.atan2(height - aim_height, distance) + math.radians(float(rng.normal(0.0, 2.0)))
    cam_yaw, roll = math.radians(float(rng.uniform(-12, 12))), math.radians(float(rng.uniform(-4, 4)))
    forward = np.array([math.sin(cam_yaw) * math.cos(pitch), -math.sin(pitch), math.cos(cam_yaw) * math.cos(pitch)])
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.sqrt(np.dot(right, right))
    down = np.cross(forward, right)
    right, down = math.cos(roll) * right + math.sin(roll) * down, -math.sin(roll) * right + math.cos(roll) * down
    world_to_camera = np.stack([right, down, forward])
    position = np.array([0.0, height, -distance])
    return View(body_to_world, (world_to_camera, -np.einsum("ij,j->i", world_to_camera, position)))


def crop_camera(rng: np.random.Generator, prims: Primitives, size: int) -> Camera:
    """Intrinsics of a square top-down crop around the person (camera-frame primitives): the
    person's box, enlarged 1.1-1.3x and jittered, fills the image (focal length = crop scale)."""
    start, end = segment_ends(prims)
    radius = prims.half_axes.max(axis=1)
    ends = np.concatenate([start, end])
    r = np.concatenate([radius, radius]) / ends[:, 2]
    u, v = ends[:, 0] / ends[:, 2], ends[:, 1] / ends[:, 2]
    u0, u1, v0, v1 = np.min(u - r), np.max(u + r), np.min(v - r), np.max(v + r)
    side = max(u1 - u0, v1 - v0) * float(rng.uniform(1.1, 1.3))
    focal = size / side
    cx = size / 2 - focal * 0.5 * (u0 + u1) + float(rng.uniform(-0.04, 0.04)) * size
    cy = size / 2 - focal * 0.5 * (v0 + v1) + float(rng.uniform(-0.04, 0.04)) * size
    fx, cx, cy = (float(np.float32(x)) for x in (focal, cx, cy))  # exactly what `cam` will hold
    return Camera(fx, fx, cx, cy, size)


# ---- ray / primitive intersection ------------------------------------------------------------
def intersect_unit_capsule(e: tuple, d: tuple, h) -> np.ndarray:
    """Entry t of rays e + t d into the capsule {|q - (0, clamp(q_y, 0, h), 0)| <= 1}; inf on a
    miss. e, d: (x, y, z) tuples of broadcastable arrays (the ray in the scaled local frame)."""
    ex, ey, ez = e
    dx, dy, dz = d
    a = dx * dx + dz * dz + _TINY
    b = ex * dx + ez * dz
    disc = b * b - a * (ex * ex + ez * ez - 1.0)
    t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    y = ey + t_side * dy
    cap = np.where(y < 0.0, 0.0, h)  # the entry is below/above the cylinder part: it is a cap
    fy = ey - cap
    a2 = a + dy * dy
    b2 = ex * dx + fy * dy + ez * dz
    disc2 = b2 * b2 - a2 * (ex * ex + fy * fy + ez * ez - 1.0)
    t_cap = (-b2 - np.sqrt(np.maximum(disc2, 0.0))) / a2
    on_side = (y >= 0.0) & (y <= h)
    t = np.where(on_side, t_side, np.where(disc2 >= 0.0, t_cap, np.inf))
    return np.where((disc >= 0.0) & (t > 0.0), t, np.inf)


def _to_local(prims: Primitives, s: int) -> tuple[np.ndarray, np.ndarray]:
    """(3,3) M with scaled-local direction = M @ camera direction, and the camera origin (3,)
    in that primitive's scaled local frame."""
    inv = prims.rotation[s].T / prims.half_axes[s][:, None]
    return inv, -np.einsum("ij,j->i", inv, prims.origin[s])


def capsule_depth(prims: Primitives, s: int, rays: np.ndarray) -> np.ndarray:
    """(...) depth of the first hit of rays (..., 3) (z = 1) with capsule s; inf on a miss."""
    m, e = _to_local(prims, s)
    d = tuple(rays[..., 0] * m[k, 0] + rays[..., 1] * m[k, 1] + m[k, 2] for k in range(3))
    return intersect_unit_capsule(tuple(e), d, prims.length[s] / prims.half_axes[s, 1])


def capsule_depths(prims: Primitives, rays: np.ndarray) -> np.ndarray:
    """(S, K) depth of the first hit of each of K rays (K, 3) (z = 1) with each capsule."""
    m = np.swapaxes(prims.rotation, 1, 2) / prims.half_axes[:, :, None]
    e = -np.einsum("sij,sj->si", m, prims.origin)
    d = tuple(rays[None, :, 0] * m[:, k, 0:1] + rays[None, :, 1] * m[:, k, 1:2] + m[:, k, 2:3] for k in range(3))
    return intersect_unit_capsule(tuple(e[:, k:k + 1] for k in range(3)), d,
                                  (prims.length / prims.half_axes[:, 1])[:, None])


def box_depth(centre: np.ndarray, rotation: np.ndarray, half: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """(...) depth of the first hit of rays (..., 3) with an oriented box (rotation columns =
    box axes, half sizes (3,)); slab test, inf on a miss."""
    origin = -np.einsum("ji,j->i", rotation, centre)
    near, far = np.full(rays.shape[:-1], -np.inf), np.full(rays.shape[:-1], np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(3):
            dk = rays[..., 0] * rotation[0, k] + rays[..., 1] * rotation[1, k] + rotation[2, k]
            t1, t2 = (-half[k] - origin[k]) / dk, (half[k] - origin[k]) / dk
            near, far = np.maximum(near, np.minimum(t1, t2)), np.minimum(far, np.maximum(t1, t2))
    return np.where((near <= far) & (near > 0.0), near, np.inf)


def plane_depth(normal: np.ndarray, offset: float, rays: np.ndarray) -> np.ndarray:
    """(...) depth where rays (..., 3) meet the plane {p : normal . p = offset}; inf if never."""
    facing = rays[..., 0] * normal[0] + rays[..., 1] * normal[1] + normal[2]
    with np.errstate(divide="ignore"):
        t = offset / facing
    return np.where(t > 0.0, t, np.inf)


_CORNER_BITS = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=np.float64)


def _screen_boxes(camera: Camera, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(B,4) int pixel windows (r0, r1, c0, c1), rows r0..r1-1 x cols c0..c1-1, that can see
    the 3D boxes lo..hi (B,3); the whole image for a box reaching behind the camera."""
    corners = lo[:, None, :] * (1.0 - _CORNER_BITS) + hi[:, None, :] * _CORNER_BITS
    xy = camera.project(corners)
    boxes = np.stack([np.floor(xy[..., 1].min(1) - 0.5), np.ceil(xy[..., 1].max(1) - 0.5) + 1,
                      np.floor(xy[..., 0].min(1) - 0.5), np.ceil(xy[..., 0].max(1) - 0.5) + 1], axis=1)
    boxes[np.any(corners[..., 2] < 0.05, axis=1)] = (0, camera.size, 0, camera.size)
    return np.clip(boxes, 0, camera.size).astype(np.intp)


def _window_rays(camera: Camera, box: tuple[int, int, int, int]) -> np.ndarray:
    r0, r1, c0, c1 = box
    return camera.directions(np.arange(r0, r1)[:, None], np.arange(c0, c1)[None, :])


def raycast_capsules(prims: Primitives, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer the capsules: depth (H,W) float (inf = nothing), label (H,W) int16 (index of
    the nearest capsule, -1 = nothing). Each capsule is only tested inside its screen box."""
    n = camera.size
    depth, label = np.full((n, n), np.inf), np.full((n, n), -1, np.int16)
    start, end = segment_ends(prims)
    extent = prims.axis_aligned_half_extent()
    lo, hi = np.minimum(start, end) - extent, np.maximum(start, end) + extent
    for s, box in enumerate(_screen_boxes(camera, lo, hi)):
        r0, r1, c0, c1 = box
        if r0 >= r1 or c0 >= c1:
            continue
        t = capsule_depth(prims, s, _window_rays(camera, box))
        window, window_label = depth[r0:r1, c0:c1], label[r0:r1, c0:c1]
        nearer = t < window
        window[nearer] = t[nearer]
        window_label[nearer] = s
    return depth, label


# ---- static background for depth with background (ITOP-like) --------------------------------
@dataclass(frozen=True)
class DepthScene:
    """Camera-frame background: planes (normal, offset), boxes (centre, rotation, half sizes)
    and vertical pillars (capsules)."""
    planes: tuple[tuple[np.ndarray, float], ...]
    boxes: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]
    pillars: Primitives

    def depth_along(self, rays: np.ndarray) -> np.ndarray:
        """(...) depth of the first scene surface on rays (..., 3) (z = 1)."""
        best = np.full(rays.shape[:-1], np.inf)
        for normal, offset in self.planes:
            best = np.minimum(best, plane_depth(normal, offset, rays))
        for box in self.boxes:
            best = np.minimum(best, box_depth(*box, rays))
        if len(self.pillars.length):
            best = np.minimum(best, capsule_depths(self.pillars, rays.reshape(-1, 3)).min(0).reshape(best.shape))
        return best

    def render(self, camera: Camera) -> np.ndarray:
        """(H,W) depth of the scene, inf where nothing (boxes and pillars in screen windows)."""
        rays = _window_rays(camera, (0, camera.size, 0, camera.size))
        depth = np.full(rays.shape[:2], np.inf)
        for normal, offset in self.planes:
            np.minimum(depth, plane_depth(normal, offset, rays), out=depth)
        for centre, rotation, half in self.boxes:
            extent = np.sqrt(np.einsum("ij,ij->i", rotation * half, rotation * half))
            r0, r1, c0, c1 = box = _screen_boxes(camera, (centre - extent)[None], (centre + extent)[None])[0]
            if r0 < r1 and c0 < c1:
                window = depth[r0:r1, c0:c1]
                np.minimum(window, box_depth(centre, rotation, half, _window_rays(camera, box)), out=window)
        pillar_depth, _ = raycast_capsules(self.pillars, camera)
        return np.minimum(depth, pillar_depth)


def sample_depth_scene(rng: np.random.Generator, view: View, body: Primitives, sitting: bool) -> DepthScene:
    """Floor, a back wall (and sometimes a side wall), 1-3 boxes and 0-2 pillars placed beside or
    behind the person (body: its primitives in the body frame) so that they never hide it from
    the camera, which stands at world x = 0; a seat under a sitting person."""
    rot, trans = view.world_to_camera
    world = body.transformed(*view.body_to_world)
    start, end = segment_ends(world)
    extent = world.axis_aligned_half_extent()
    lo, hi = np.minimum(start, end).min(0) - extent.max(0), np.maximum(start, end).max(0) + extent.max(0)
    clear_x = max(abs(lo[0]), abs(hi[0]))

    def plane(normal_w: np.ndarray, offset_w: float) -> tuple[np.ndarray, float]:
        normal = np.einsum("ij,j->i", rot, normal_w)
        return normal, offset_w + float(np.dot(normal, trans))

    # a wall turned by at most 20 degrees stays behind a body within ~1.4 m of the vertical axis
    wall_z, wall_yaw = hi[2] + float(rng.uniform(0.5, 2.5)), math.radians(float(rng.uniform(-20, 20)))
    wall_normal = np.array([math.sin(wall_yaw), 0.0, math.cos(wall_yaw)])
    planes = [plane(np.array([0.0, 1.0, 0.0]), 0.0), plane(wall_normal, wall_normal[2] * wall_z)]
    if rng.random() < 0.5:
        planes.append(plane(np.array([1.0, 0.0, 0.0]), float(rng.choice([-1, 1]) * (clear_x + rng.uniform(0.8, 2.5)))))

    def beside(half_width: float) -> tuple[float, float]:  # (x, z) of an object clear of the body
        x = float(rng.choice([-1, 1])) * (clear_x + half_width + float(rng.uniform(0.05, 1.5)))
        return x, float(rng.uniform(-1.0, wall_z - 0.3))

    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        half = np.array([rng.uniform(0.1, 0.35), rng.uniform(0.1, 0.75), rng.uniform(0.1, 0.35)])
        x, z = beside(float(np.hypot(half[0], half[2])))
        boxes.append((np.einsum("ij,j->i", rot, [x, half[1], z]) + trans,
                      compose(rot, rot_y(float(rng.uniform(0, 90)))), half))
    if sitting:  # a stool under the buttocks, its top at the lowest point of the torso
        body_rot, pelvis = view.body_to_world
        top = float(np.min(np.minimum(start[0, 1], end[0, 1]) - extent[0, 1]))
        centre = pelvis + 0.05 * body_rot[:, 2] + np.array([0.0, 0.5 * top - pelvis[1], 0.0])
        boxes.append((np.einsum("ij,j->i", rot, centre) + trans, compose(rot, body_rot),
                      np.array([0.2, 0.5 * top, 0.18])))
    count = int(rng.integers(0, 3))
    radius, height = rng.uniform(0.06, 0.2, size=count), rng.uniform(0.5, 2.2, size=count)
    spots = [beside(float(r)) for r in radius]
    origins = np.array([[x, r, z] for (x, z), r in zip(spots, radius)]).reshape(count, 3)
    pillars = Primitives(origins, np.broadcast_to(np.eye(3), (count, 3, 3)).copy(),
                         np.repeat(radius[:, None], 3, axis=1), np.maximum(height - 2 * radius, 0.0))
    return DepthScene(tuple(planes), tuple(boxes), pillars.transformed(rot, trans))


# ---- surface geometry of the hits and keypoint visibility -----------------------------------
@dataclass(frozen=True)
class Hits:
    """Foreground pixels of the body: rows, cols (N,), segment (N,), local (N,3) point in the
    segment's scaled local frame, normal (N,3) unit outward normal in the camera frame."""
    rows: np.ndarray
    cols: np.ndarray
    segment: np.ndarray
    local: np.ndarray
    normal: np.ndarray


def hit_geometry(prims: Primitives, camera: Camera, depth: np.ndarray, label: np.ndarray) -> Hits:
    """Where each body pixel's ray meets its nearest capsule (depth, label from raycast_capsules)."""
    rows, cols = np.nonzero(label >= 0)
    seg = label[rows, cols].astype(np.intp)
    point = depth[rows, cols][:, None] * camera.directions(rows, cols) - prims.origin[seg]
    rot, axes = prims.rotation[seg], prims.half_axes[seg]
    local = (rot[:, 0, :] * point[:, 0:1] + rot[:, 1, :] * point[:, 1:2] + rot[:, 2, :] * point[:, 2:3]) / axes
    top = (prims.length / prims.half_axes[:, 1])[seg]
    n_local = local.copy()
    n_local[:, 1] -= np.clip(local[:, 1], 0.0, top)
    n_local /= axes  # the normal transforms with the inverse scale
    normal = rot[:, :, 0] * n_local[:, 0:1] + rot[:, :, 1] * n_local[:, 1:2] + rot[:, :, 2] * n_local[:, 2:3]
    normal /= np.sqrt(np.sum(normal * normal, axis=1, keepdims=True)) + _TINY
    return Hits(rows, cols, seg, local, normal)


def first_hit_depth(prims: Primitives, points: np.ndarray) -> np.ndarray:
    """(K,) depth of the first capsule surface on the camera rays through points (K,3)."""
    return capsule_depths(prims, points / points[:, 2:3]).min(axis=0)


def keypoint_visibility(points: np.ndarray, radii: np.ndarray, first_hit: np.ndarray,
                        camera: Camera) -> np.ndarray:
    """COCO visibility (K,) of camera-frame joints (K,3): 0 outside the image, 1 when the first
    surface on the joint's ray lies more than radius + margin in front of it, else 2."""
    xy = camera.project(points)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < camera.size) & (xy[:, 1] >= 0) & (xy[:, 1] < camera.size)
    ray_length = np.sqrt(np.sum((points / points[:, 2:3]) ** 2, axis=1))  # metres per unit depth
    in_front = (points[:, 2] - first_hit) * ray_length
    visible = in_front <= radii + VISIBILITY_MARGIN
    return np.where(inside, np.where(visible, 2, 1), 0).astype(np.float32)
