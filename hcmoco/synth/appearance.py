"""How SynthHuman looks in RGB: clothing and skin (procedural textures fixed to the body
surface), Lambertian shading, cluttered procedural backgrounds and sensor noise.

Colours are floats in [0, 1] until `finish_rgb` quantises them. Textures are functions of
surface coordinates in metres, so a garment's pattern sticks to the body as it moves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcmoco.synth.body import SEGMENTS

PATTERNS = ("solid", "h_stripes", "v_stripes", "checks", "mottled", "dots")
SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.89, 0.68, 0.55], [0.78, 0.57, 0.42], [0.63, 0.44, 0.30],
                       [0.45, 0.30, 0.20], [0.30, 0.20, 0.14]])
HAIR_COLOURS = np.array([[0.08, 0.06, 0.05], [0.25, 0.16, 0.09], [0.50, 0.35, 0.18], [0.80, 0.66, 0.40],
                         [0.55, 0.55, 0.55], [0.45, 0.18, 0.08]])
# which garment covers each segment kind (the segment name without its side prefix)
_KIND = np.array([s.name.removeprefix("r_").removeprefix("l_") for s in SEGMENTS])
SKIN, SHIRT, TROUSERS, SHOES, HAIR, EYE, MOUTH = range(7)
_EYE_DIRECTIONS = np.array([[0.33, 0.12, 0.936], [-0.33, 0.12, 0.936]])  # on the unit skull


@dataclass(frozen=True)
class Garment:
    base: np.ndarray  # (3,) colour
    accent: np.ndarray  # (3,) second colour of the pattern
    pattern: int  # index into PATTERNS
    frequency: float  # pattern cycles per metre
    duty: float  # fraction of a cycle in the accent colour


@dataclass(frozen=True)
class Look:
    """One person's appearance (kept across their samples, like a recording session)."""
    skin: np.ndarray
    hair: np.ndarray
    hair_drop: float  # how far down the back of the head the hair reaches (0: bald .. 1.4: long)
    shirt: Garment
    trousers: Garment
    shoes: Garment
    sleeve_end: float  # fraction of the upper arm covered; > 1 means long sleeves
    trouser_end: float  # fraction of the thigh covered; > 1 means long trousers
    texture_salt: int


def _random_colour(rng: np.random.Generator, dark: bool = False) -> np.ndarray:
    hue, sat = rng.uniform(0, 1), rng.uniform(0.0, 0.9)
    val = rng.uniform(0.05, 0.35) if dark else rng.uniform(0.15, 0.95)
    rgb = np.clip(np.abs(((hue * 6 + np.array([0.0, 4.0, 2.0])) % 6) - 3) - 1, 0, 1)  # HSV hue ramp
    return val * (1 - sat + sat * rgb)


def _garment(rng: np.random.Generator, jeans: bool = False) -> Garment:
    base = np.array([0.15, 0.22, 0.42]) * rng.uniform(0.7, 1.4) if jeans else _random_colour(rng)
    pattern = 4 if jeans else int(rng.choice(len(PATTERNS), p=[0.35, 0.15, 0.1, 0.15, 0.1, 0.15]))
    return Garment(np.clip(base, 0, 1), _random_colour(rng), pattern, float(rng.uniform(4, 25)),
                   float(rng.uniform(0.2, 0.6)))


def sample_look(rng: np.random.Generator) -> Look:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.08, size=3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.8, 1.2)
    shoes = Garment(_random_colour(rng, dark=rng.random() < 0.7), np.zeros(3), 0, 1.0, 0.0)
    return Look(np.clip(skin, 0, 1), np.clip(hair, 0, 1), float(rng.choice([0.0, 0.6, 0.9, 1.4])),
                _garment(rng), _garment(rng, jeans=rng.random() < 0.35), shoes,
                float(rng.choice([0.0, 0.45, 0.6, 2.0, 2.0])), float(rng.choice([0.6, 2.0, 2.0, 2.0])),
                int(rng.integers(1, 2**31 - 1)))


# ---- procedural texture primitives ---------------------------------------------------------
def lattice_hash(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Pseudo-random value in [0, 1) per integer lattice point (integer mixing, deterministic)."""
    h = (ix.astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343)) ^ \
        (iy.astype(np.int64).astype(np.uint32) * np.uint32(0xD8163841)) ^ np.uint32(salt & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return h.astype(np.float64) / 4294967296.0


def value_noise(x: np.ndarray, y: np.ndarray, salt: int) -> np.ndarray:
    """Smooth noise in [0, 1) with one feature per unit cell (bilinear over hashed corners)."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    c00, c10 = lattice_hash(x0, y0, salt), lattice_hash(x0 + 1, y0, salt)
    c01, c11 = lattice_hash(x0, y0 + 1, salt), lattice_hash(x0 + 1, y0 + 1, salt)
    return (c00 * (1 - fx) + c10 * fx) * (1 - fy) + (c01 * (1 - fx) + c11 * fx) * fy


def _square_wave(x: np.ndarray, duty: float) -> np.ndarray:
    return ((x - np.floor(x)) < duty).astype(np.float64)


def pattern_mask(g: Garment, s: np.ndarray, t: np.ndarray, salt: int) -> np.ndarray:
    """Accent weight in [0, 1] of garment g at surface coordinates s (around), t (along), metres."""
    name = PATTERNS[g.pattern]
    fs, ft = s * g.frequency, t * g.frequency
    if name == "h_stripes":
        return _square_wave(ft, g.duty)
    if name == "v_stripes":
        return _square_wave(fs, g.duty)
    if name == "checks":
        return np.abs(_square_wave(fs, 0.5) - _square_wave(ft, 0.5))
    if name == "mottled":
        return 0.6 * value_noise(fs * 3, ft * 3, salt) + 0.4 * value_noise(fs * 9, ft * 9, salt + 1)
    if name == "dots":
        ds, dt = fs - np.floor(fs) - 0.5, ft - np.floor(ft) - 0.5
        return (ds * ds + dt * dt < 0.25 * g.duty).astype(np.float64)
    return np.zeros_like(s)


def _garment_colour(g: Garment, s: np.ndarray, t: np.ndarray, salt: int) -> np.ndarray:
    m = pattern_mask(g, s, t, salt)[:, None]
    fabric = 0.92 + 0.16 * value_noise(s * 60, t * 60, salt + 7)[:, None]  # weave-scale grain
    return (g.base * (1 - m) + g.accent * m) * fabric


# ---- the person -----------------------------------------------------------------------------
def person_albedo(look: Look, segment: np.ndarray, local: np.ndarray, v_seg: np.ndarray,
                  half_axes: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(N,3) surface colour of body hits: segment (N,), local (N,3) scaled local point,
    v_seg (N,) position along the segment; half_axes (S,3), length (S,) of this person."""
    kind = _KIND[segment]
    cover = np.full(len(segment), SKIN)
    cover[(kind == "torso") & (v_seg >= 0.26)] = SHIRT
    cover[(kind == "torso") & (v_seg < 0.26)] = TROUSERS  # waistband and hips
    cover[(kind == "upper_arm") & (v_seg < look.sleeve_end)] = SHIRT
    cover[(kind == "lower_arm") & (v_seg < look.sleeve_end - 1.1)] = SHIRT
    cover[(kind == "upper_leg") & (v_seg < look.trouser_end)] = TROUSERS
    cover[(kind == "lower_leg") & (v_seg < look.trouser_end - 1.05)] = TROUSERS
    cover[kind == "foot"] = SHOES
    skull = kind == "skull"
    qx, qy, qz = local[:, 0], local[:, 1], local[:, 2]
    hairline = np.where(qz > 0, 0.4 + 0.1 * qz, 0.4 + look.hair_drop * qz)
    cover[skull & (qy > hairline) & (look.hair_drop > 0)] = HAIR
    for eye in _EYE_DIRECTIONS:
        near = (qx - eye[0]) ** 2 + (qy - eye[1]) ** 2 + (qz - eye[2]) ** 2 < 0.015
        cover[skull & near] = EYE
    cover[skull & (np.abs(qx) < 0.22) & (np.abs(qy + 0.55) < 0.05) & (qz > 0)] = MOUTH

    # texture coordinates in metres: around the axis and along it from the segment's start
    radius = 0.5 * (half_axes[segment, 0] + half_axes[segment, 2])
    s = np.arctan2(qz, qx) * radius
    t = v_seg * (length[segment] + 2 * half_axes[segment, 1])
    colour = np.empty((len(segment), 3))
    colour[:] = look.skin * (0.95 + 0.1 * value_noise(s * 40, t * 40, look.texture_salt)[:, None])
    for code, item in ((SHIRT, look.shirt), (TROUSERS, look.trousers), (SHOES, look.shoes)):
        pick = cover == code
        colour[pick] = _garment_colour(item, s[pick], t[pick], look.texture_salt + code)
    colour[cover == HAIR] = look.hair * (0.85 + 0.3 * value_noise(s[cover == HAIR] * 150, t[cover == HAIR] * 20,
                                                                  look.texture_salt)[:, None])
    colour[cover == EYE] = (0.08, 0.06, 0.05)
    colour[cover == MOUTH] = look.skin * (0.65, 0.4, 0.4)
    return colour


@dataclass(frozen=True)
class Light:
    direction: np.ndarray  # (3,) unit vector from the surface towards the light, camera frame
    ambient: float
    diffuse: float
    tint: np.ndarray  # (3,) colour of the light


def sample_light(rng: np.random.Generator) -> Light:
    d = np.array([rng.uniform(-1, 1), rng.uniform(-1.2, -0.1), rng.uniform(-1.5, -0.2)])
    return Light(d / np.sqrt(np.dot(d, d)), float(rng.uniform(0.25, 0.55)), float(rng.uniform(0.5, 0.9)),
                 rng.uniform(0.85, 1.15, size=3))


def shade(albedo: np.ndarray, normal: np.ndarray, light: Light) -> np.ndarray:
    """Lambertian shading (N,3) of albedo (N,3) with unit normals (N,3)."""
    lambert = np.maximum(0.0, normal[:, 0] * light.direction[0] + normal[:, 1] * light.direction[1]
                         + normal[:, 2] * light.direction[2])
    return albedo * (light.ambient + light.diffuse * lambert)[:, None] * light.tint


# ---- background and sensor ------------------------------------------------------------------
def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) float32 noise in [0, 1] with about `cells` features across: a random
    (cells+1)^2 grid upsampled with smoothstep-weighted bilinear interpolation (separable)."""
    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    pos = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(cells / size)
    i0 = np.minimum(pos.astype(np.intp), cells - 1)
    w = pos - i0
    w = w * w * (3 - 2 * w)
    by_row = grid[i0] * (1 - w)[:, None] + grid[i0 + 1] * w[:, None]
    return by_row[:, i0] * (1 - w)[None, :] + by_row[:, i0 + 1] * w[None, :]


def procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float32 cluttered indoor-like scene: wall and floor with blotches and
    panels, then 4-14 random shapes (boxes, discs, limb-like sticks in skin or cloth colours, rings)."""
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    horizon = rng.uniform(0.35, 0.95) * size
    top, bottom, floor = (_random_colour(rng).astype(np.float32) for _ in range(3))
    k = np.clip(rows / max(horizon, 1.0), 0, 1)[..., None]
    column = np.where((rows < horizon)[..., None], top * (1 - k) + bottom * k,
                      floor * (0.7 + 0.3 * np.clip((rows - horizon) / size, 0, 1))[..., None])
    image = column * (0.75 + 0.5 * smooth_noise(rng, size, int(rng.integers(2, 10))))[..., None]
    if rng.random() < 0.5:  # wall panels or tiles
        period = rng.uniform(0.05, 0.3) * size
        lines = (cols % period < 1.0) | ((rows % period < 1.0) & (rng.random() < 0.5))
        image[lines & (rows < horizon)] *= 0.7
    for _ in range(int(rng.integers(4, 15))):
        colour = SKIN_TONES[rng.integers(len(SKIN_TONES))] if rng.random() < 0.2 else _random_colour(rng)
        cy, cx = rng.uniform(-0.1, 1.1, size=2) * size
        a, b = rng.uniform(0.04, 0.3, size=2) * size
        angle, shape = rng.uniform(0, np.pi), int(rng.integers(4))
        reach = (np.hypot(a, b), np.hypot(a, b), a + 0.15 * b + 1.0, a)[shape]  # circumradius
        r0, r1 = int(max(0, cy - reach)), int(min(size, cy + reach + 1))
        c0, c1 = int(max(0, cx - reach)), int(min(size, cx + reach + 1))
        if r0 >= r1 or c0 >= c1:
            continue
        y, x = rows[r0:r1] - np.float32(cy), cols[:, c0:c1] - np.float32(cx)
        cos_a, sin_a = np.float32(np.cos(angle)), np.float32(np.sin(angle))
        u, v = x * cos_a + y * sin_a, y * cos_a - x * sin_a
        if shape == 0:
            mask = (np.abs(u) < a) & (np.abs(v) < b)
        elif shape == 1:
            mask = u * u * np.float32(1 / a**2) + v * v * np.float32(1 / b**2) < 1.0
        elif shape == 2:  # a stick: distance to a segment, like a limb
            along = np.clip(u, -a, a) - u
            mask = along * along + v * v < (0.15 * b + 1.0) ** 2
        else:
            rr = (u * u + v * v) * np.float32(1 / a**2)
            mask = (rr < 1.0) & (rr > 0.5)
        shaded = colour.astype(np.float32) * (1.0 + np.float32(0.2 / b) * v)[..., None]  # a soft gradient
        np.copyto(image[r0:r1, c0:c1], shaded, where=mask[..., None])
    return image


def finish_rgb(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera response: exposure, gamma, optional slight blur, Gaussian noise -> uint8 (H,W,3)."""
    gain, offset, gamma = rng.uniform(0.8, 1.2), rng.uniform(-0.05, 0.05), rng.uniform(0.8, 1.25)
    image = np.clip(image.astype(np.float32) * np.float32(gain) + np.float32(offset), 0.0, 1.0) ** np.float32(gamma)
    if rng.random() < 0.5:  # a little optical blur (separable [1 2 1] / 4)
        padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
        image = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
        image = 0.25 * image[:, :-2] + 0.5 * image[:, 1:-1] + 0.25 * image[:, 2:]
    sigma = np.float32(rng.uniform(0.005, 0.03))
    image = image + rng.standard_normal(image.shape, dtype=np.float32) * sigma
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
