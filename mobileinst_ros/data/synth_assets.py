"""Appearance pieces of the synthetic videos: backgrounds, object shapes and object textures.

Everything is drawn with numpy + OpenCV from a ``numpy.random.Generator`` so that a seed fixes it.
Images are RGB uint8. Shapes are drawn on a square *template* (``TEMPLATE_SIZE`` pixels, the shape's
outer radius is ``TEMPLATE_RADIUS``) that the renderer warps into each frame.
"""
from __future__ import annotations

import functools
import math

import cv2
import numpy as np

__all__ = [
    "CATEGORIES",
    "TEMPLATE_RADIUS",
    "TEMPLATE_SIZE",
    "background_images",
    "make_background_strip",
    "make_object_template",
]

# Class = shape; textures are drawn from the same pool for every class, so the network has to learn
# the outline and cannot cheat on colour alone.
CATEGORIES: tuple[str, ...] = ("disc", "box", "triangle", "star", "ring", "cross")

TEMPLATE_RADIUS = 96
TEMPLATE_SIZE = 2 * TEMPLATE_RADIUS + 8

_COLOR_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry",
                 "hubble_deep_field", "colorwheel", "retina")
_GRAY_IMAGES = ("camera", "grass", "gravel", "brick", "moon", "coins", "cell", "clock", "page", "text")


@functools.lru_cache(maxsize=1)
def background_images() -> tuple[np.ndarray, ...]:
    """scikit-image's bundled photographs as RGB uint8 arrays (grey ones replicated to 3 channels)."""
    from skimage import data  # imported lazily: it is slow to import and only the generator needs it

    images = [np.ascontiguousarray(getattr(data, name)()[..., :3]) for name in _COLOR_IMAGES]
    images += [np.repeat(getattr(data, name)()[..., None], 3, axis=2) for name in _GRAY_IMAGES]
    return tuple(images)


def _random_color(rng: np.random.Generator) -> np.ndarray:
    hsv = np.array([[[rng.integers(0, 180), rng.integers(70, 256), rng.integers(60, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _recolor(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Channel shuffle + per-channel gain, so a few source photos give many looks."""
    out = image[..., rng.permutation(3)].astype(np.float32)
    out *= rng.uniform(0.7, 1.25, size=3).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_background_strip(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A photo rescaled to at least (height, width) with room to pan; RGB uint8 (H', W', 3)."""
    images = background_images()
    image = images[int(rng.integers(len(images)))]
    if rng.random() < 0.5:
        image = image[:, ::-1]
    # Enough margin for a camera pan of up to ~0.35 of the frame over the clip.
    need_h, need_w = height * 1.4, width * 1.4
    scale = max(need_h / image.shape[0], need_w / image.shape[1]) * rng.uniform(1.0, 1.6)
    size = (math.ceil(image.shape[1] * scale), math.ceil(image.shape[0] * scale))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return _recolor(resized, rng)


def _shape_polygons(category: str, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outer polygons and hole polygons of one shape, unit outer radius, centred at the origin."""
    if category == "disc":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        aspect = rng.uniform(0.8, 1.0)
        return [np.stack([np.cos(t), aspect * np.sin(t)], 1)], []
    if category == "box":
        aspect = rng.uniform(0.45, 1.0)
        half_w, half_h = 1 / math.sqrt(1 + aspect**2), aspect / math.sqrt(1 + aspect**2)
        return [np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])], []
    if category == "triangle":
        angles = np.array([90.0, 210.0, 330.0]) + rng.uniform(-12, 12, size=3)
        t = np.deg2rad(angles)
        return [np.stack([np.cos(t), np.sin(t)], 1)], []
    if category == "star":
        inner = rng.uniform(0.38, 0.55)
        t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return [np.stack([r * np.cos(t), r * np.sin(t)], 1)], []
    if category == "ring":
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        inner = rng.uniform(0.45, 0.65)
        circle = np.stack([np.cos(t), np.sin(t)], 1)
        return [circle], [inner * circle]
    if category == "cross":
        a = rng.uniform(0.22, 0.36)  # half arm width; the arm tips touch the unit circle
        b = math.sqrt(1 - a * a)
        return [np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b],
                          [-a, a], [-b, a], [-b, -a], [-a, -a]])], []
    raise ValueError(f"unknown shape category {category!r}; expected one of {CATEGORIES}")


def _draw_alpha(outer: list[np.ndarray], holes: list[np.ndarray]) -> np.ndarray:
    """Anti-aliased shape coverage on the template, uint8 (TEMPLATE_SIZE, TEMPLATE_SIZE)."""
    shift = 4  # cv2 sub-pixel vertices: coordinates carry 4 fractional bits
    centre = TEMPLATE_SIZE / 2

    def to_pixels(polygon: np.ndarray) -> np.ndarray:
        return np.round((polygon * TEMPLATE_RADIUS + centre) * (1 << shift)).astype(np.int32)

    alpha = np.zeros((TEMPLATE_SIZE, TEMPLATE_SIZE), np.uint8)
    cv2.fillPoly(alpha, [to_pixels(p) for p in outer], 255, cv2.LINE_AA, shift)
    if holes:
        cv2.fillPoly(alpha, [to_pixels(p) for p in holes], 0, cv2.LINE_AA, shift)
    return alpha


def _grid(size: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    return xs * c + ys * s, -xs * s + ys * c


def _two_tone(weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    c1, c2 = _random_color(rng), _random_color(rng)
    w = weight[..., None].astype(np.float32)
    return c1 * (1 - w) + c2 * w


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """One of five texture families, float32 RGB (size, size, 3) in [0, 255]."""
    kind = int(rng.integers(5))
    if kind == 0:  # stripes
        u, _ = _grid(size, rng.uniform(0, np.pi))
        period = rng.uniform(8, 30)
        return _two_tone((u / period) % 1.0 < rng.uniform(0.3, 0.7), rng)
    if kind == 1:  # checker
        u, v = _grid(size, rng.uniform(0, np.pi / 2))
        cell = rng.uniform(10, 36)
        return _two_tone((np.floor(u / cell) + np.floor(v / cell)) % 2, rng)
    if kind == 2:  # smooth noise, two octaves
        coarse = cv2.resize(rng.standard_normal((6, 6)).astype(np.float32), (size, size),
                            interpolation=cv2.INTER_CUBIC)
        fine = cv2.resize(rng.standard_normal((24, 24)).astype(np.float32), (size, size),
                          interpolation=cv2.INTER_CUBIC)
        noise = coarse + 0.4 * fine
        return _two_tone((noise - noise.min()) / (np.ptp(noise) + 1e-6), rng)
    if kind == 3:  # polka dots
        u, v = _grid(size, rng.uniform(0, np.pi / 2))
        spacing = rng.uniform(14, 36)
        du, dv = (u % spacing) - spacing / 2, (v % spacing) - spacing / 2
        return _two_tone(np.hypot(du, dv) < spacing * rng.uniform(0.2, 0.4), rng)
    # a patch of a real photograph
    images = background_images()
    image = images[int(rng.integers(len(images)))]
    crop = int(min(image.shape[:2]) * rng.uniform(0.25, 0.6))
    y0 = int(rng.integers(0, image.shape[0] - crop + 1))
    x0 = int(rng.integers(0, image.shape[1] - crop + 1))
    patch = cv2.resize(image[y0:y0 + crop, x0:x0 + crop], (size, size), interpolation=cv2.INTER_AREA)
    return _recolor(patch, rng).astype(np.float32)


def _shading(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear light gradient across the object, so it looks lit from one side."""
    u, _ = _grid(size, rng.uniform(0, 2 * np.pi))
    strength = rng.uniform(0.0, 0.35)
    return (1.0 + strength * (u / size - 0.5) * 2).astype(np.float32)[..., None]


def make_object_template(category: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Texture (S, S, 3) uint8 and coverage alpha (S, S) uint8 of one object, S = TEMPLATE_SIZE.

    Two objects made from generators in the same state are identical (look-alike twins).
    """
    outer, holes = _shape_polygons(category, rng)
    alpha = _draw_alpha(outer, holes)
    texture = _texture(rng, TEMPLATE_SIZE) * _shading(rng, TEMPLATE_SIZE)
    return np.clip(texture, 0, 255).astype(np.uint8), alpha
