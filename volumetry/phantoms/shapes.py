"""Analytic lesion shapes with their true volumes.

Every lesion is a union of ellipsoids (:class:`Solid`): a sphere or rotated
ellipsoid (one part, analytic volume ``4/3·π·a·b·c``), a lobulated lesion (a
body plus overlapping lobes), an infiltrative lesion (a body plus many thin
finger-like extensions). Unions have no closed-form volume; their truth is a
stated Monte-Carlo estimate with its standard error (:func:`monte_carlo_volume`).

Each part also gives a conservative lower bound on the distance of any point
to its surface, which lets the voxeliser supersample only the voxels near the
surface (see :mod:`volumetry.phantoms.mri`).

Interior structures (:class:`Septum`, dark cysts as ellipsoids) change the
intensity only: the lesion's ground truth is its outer envelope, as a reader
outlines it.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from .geometry import rotation_matrix

#: Monte-Carlo samples used for the truth volume of unions (standard error
#: below 0.1 % of the volume for the lobulated and infiltrative shapes).
MC_SAMPLES = 1_000_000


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed 3×3 rotation matrix."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


@dataclasses.dataclass(frozen=True, eq=False)
class Ellipsoid:
    """A solid ellipsoid.

    Attributes
    ----------
    center : numpy.ndarray
        Centre (mm), shape (3,).
    semi_axes : numpy.ndarray
        Semi-axis lengths (mm), shape (3,).
    rotation : numpy.ndarray
        3×3, columns are the unit directions of the three semi-axes.
    """

    center: np.ndarray
    semi_axes: np.ndarray
    rotation: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "center", np.asarray(self.center, float).reshape(3))
        object.__setattr__(self, "semi_axes", np.asarray(self.semi_axes, float).reshape(3))
        object.__setattr__(self, "rotation", np.asarray(self.rotation, float).reshape(3, 3))
        m = self.rotation / self.semi_axes  # column c scaled by 1 / a_c
        object.__setattr__(self, "_m", m)
        object.__setattr__(self, "_cm", self.center @ m)

    @property
    def volume_mm3(self) -> float:
        """Analytic volume ``4/3·π·a·b·c`` in mm³."""
        return 4.0 / 3.0 * math.pi * float(np.prod(self.semi_axes))

    def radius(self, pts: np.ndarray) -> np.ndarray:
        """Ellipsoidal radius ``q`` of points ``(N, 3)``: 1 on the surface, < 1 inside."""
        return np.sqrt(self.radius2(pts))

    def radius2(self, pts: np.ndarray) -> np.ndarray:
        """Squared ellipsoidal radius of points ``(..., 3)``."""
        pts = np.asarray(pts, float)
        return self.radius2_xyz(pts[..., 0], pts[..., 1], pts[..., 2])

    def radius2_xyz(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Squared ellipsoidal radius of points given as coordinate arrays (fast path)."""
        m, c = self._m, self._cm
        q = None
        for a in range(3):
            t = m[0, a] * x
            t += m[1, a] * y
            t += m[2, a] * z
            t -= c[a]
            t *= t
            if q is None:
                q = t
            else:
                q += t
        return q

    def half_extent(self) -> np.ndarray:
        """Half-widths (mm) of the axis-aligned bounding box."""
        return np.sqrt(((self.rotation * self.semi_axes) ** 2).sum(axis=1))

    def distance_bound(self, q: np.ndarray) -> np.ndarray:
        """Lower bound (mm) of the distance to the surface of points of radius ``q``.

        ``|q(x) − q(y)| ≤ |x − y| / a_min``, so a point is at least
        ``|q − 1|·a_min`` from the surface ``q = 1``.
        """
        return np.abs(q - 1.0) * float(self.semi_axes.min())

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> "Ellipsoid":
        """The ellipsoid moved by ``x -> rotation @ x + translation``."""
        return Ellipsoid(rotation @ self.center + translation, self.semi_axes, rotation @ self.rotation)

    def scaled(self, factor: float, about: np.ndarray) -> "Ellipsoid":
        """Isotropically scaled by ``factor`` (lengths) about the point ``about``."""
        return Ellipsoid(about + factor * (self.center - about), self.semi_axes * factor, self.rotation)


@dataclasses.dataclass(frozen=True, eq=False)
class Septum:
    """A thin planar sheet (mm): points within ``thickness/2`` of the plane."""

    point: np.ndarray
    normal: np.ndarray
    thickness: float

    def __post_init__(self):
        n = np.asarray(self.normal, float).reshape(3)
        object.__setattr__(self, "point", np.asarray(self.point, float).reshape(3))
        object.__setattr__(self, "normal", n / np.linalg.norm(n))

    def signed(self, pts: np.ndarray) -> np.ndarray:
        """Signed distance (mm), negative inside the sheet (exact)."""
        return np.abs((pts - self.point) @ self.normal) - self.thickness / 2.0

    def transformed(self, rotation, translation) -> "Septum":
        return Septum(rotation @ self.point + translation, rotation @ self.normal, self.thickness)

    def scaled(self, factor, about) -> "Septum":
        return Septum(about + factor * (self.point - about), self.normal, self.thickness)


@dataclasses.dataclass(frozen=True, eq=False)
class Solid:
    """A union of ellipsoids: one lesion focus.

    Attributes
    ----------
    parts : tuple of Ellipsoid
        The union's members; ``parts[0]`` is the body (its centre is inside).
    kind : str
        ``sphere``, ``ellipsoid``, ``lobulated``, ``infiltrative`` ...
    """

    parts: tuple
    kind: str = "ellipsoid"

    @property
    def center(self) -> np.ndarray:
        """Centre of the body (mm)."""
        return self.parts[0].center

    @property
    def analytic(self) -> bool:
        """True when the volume has a closed form (a single ellipsoid)."""
        return len(self.parts) == 1

    def inside(self, pts: np.ndarray) -> np.ndarray:
        """Boolean membership of points ``(..., 3)``."""
        pts = np.asarray(pts, float)
        return self.inside_xyz(pts[..., 0], pts[..., 1], pts[..., 2])

    def inside_xyz(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Boolean membership of points given as coordinate arrays (fast path)."""
        out = self.parts[0].radius2_xyz(x, y, z) <= 1.0
        for p in self.parts[1:]:
            out |= p.radius2_xyz(x, y, z) <= 1.0
        return out

    def classify(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Membership and a lower bound (mm) of the distance to the union's surface.

        Outside every part: the minimum of the parts' bounds. Inside some
        parts: the largest bound among the parts that contain the point.
        """
        inside = np.zeros(pts.shape[:-1], bool)
        d_in = np.zeros(pts.shape[:-1])
        d_out = np.full(pts.shape[:-1], np.inf)
        for p in self.parts:
            q = p.radius(pts)
            b = p.distance_bound(q)
            inn = q <= 1.0
            inside |= inn
            d_in = np.where(inn, np.maximum(d_in, b), d_in)
            d_out = np.where(inn, d_out, np.minimum(d_out, b))
        return inside, np.where(inside, d_in, d_out)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounding box ``(lo, hi)`` in mm."""
        lo = np.min([p.center - p.half_extent() for p in self.parts], axis=0)
        hi = np.max([p.center + p.half_extent() for p in self.parts], axis=0)
        return lo, hi

    def bounding_radius(self) -> float:
        """Radius (mm) of a sphere about :attr:`center` that holds the solid."""
        return float(max(np.linalg.norm(p.center - self.center) + p.semi_axes.max() for p in self.parts))

    def transformed(self, rotation, translation) -> "Solid":
        """Rigidly moved copy (``x -> R x + t``)."""
        return Solid(tuple(p.transformed(rotation, translation) for p in self.parts), self.kind)

    def scaled(self, factor: float, about: np.ndarray | None = None) -> "Solid":
        """Copy scaled by ``factor`` (lengths; volume by ``factor**3``) about ``about``
        (default: the body centre)."""
        about = self.center if about is None else np.asarray(about, float)
        return Solid(tuple(p.scaled(factor, about) for p in self.parts), self.kind)


@dataclasses.dataclass(frozen=True)
class TrueVolume:
    """A true volume with its standard error (0 when analytic), in mm³."""

    mm3: float
    se_mm3: float
    method: str  # "analytic" or "monte-carlo (N samples)"

    @property
    def ml(self) -> float:
        return self.mm3 / 1000.0

    @property
    def se_ml(self) -> float:
        return self.se_mm3 / 1000.0

    def scaled(self, volume_factor: float) -> "TrueVolume":
        return TrueVolume(self.mm3 * volume_factor, self.se_mm3 * volume_factor, self.method)


def monte_carlo_volume(solid: Solid, *, seed: int, n: int = MC_SAMPLES) -> TrueVolume:
    """Volume of a union by uniform sampling of its bounding box.

    The body (``parts[0]``) has an analytic volume; only the part of the union
    outside the body is estimated: ``V = V_body + V_box·p`` where ``p`` is the
    fraction of samples inside the union but outside the body, with standard
    error ``V_box·sqrt(p(1−p)/n)`` (a control variate: much smaller than
    sampling the whole union).

    Parameters
    ----------
    solid : Solid
    seed : int
        Seed of the sampler (the estimate is deterministic given the seed).
    n : int
        Number of samples.

    Returns
    -------
    TrueVolume
        Estimate and its standard error in mm³.
    """
    lo, hi = solid.bounds()
    rng = np.random.default_rng(seed)
    body, rest = solid.parts[0], Solid(solid.parts[1:], solid.kind)
    hits = 0
    chunk = 250_000
    done = 0
    while done < n:
        m = min(chunk, n - done)
        x, y, z = lo[:, None] + rng.random((3, m)) * (hi - lo)[:, None]
        hits += int((rest.inside_xyz(x, y, z) & (body.radius2_xyz(x, y, z) > 1.0)).sum())
        done += m
    vbox = float(np.prod(hi - lo))
    p = hits / n
    return TrueVolume(body.volume_mm3 + vbox * p, vbox * math.sqrt(p * (1 - p) / n),
                      f"monte-carlo ({n} samples outside the analytic body)")


def true_volume(solid: Solid, *, seed: int) -> TrueVolume:
    """Analytic volume for one ellipsoid, else :func:`monte_carlo_volume`."""
    if solid.analytic:
        return TrueVolume(solid.parts[0].volume_mm3, 0.0, "analytic")
    return monte_carlo_volume(solid, seed=seed)


# --------------------------------------------------------------------- builders
def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _frame_along(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation whose first column is ``v`` (unit), the others random around it."""
    a = rng.normal(size=3)
    a -= a.dot(v) * v
    a /= np.linalg.norm(a)
    return np.column_stack([v, a, np.cross(v, a)])


def build_solid(kind: str, rng: np.random.Generator, center=(0.0, 0.0, 0.0)) -> Solid:
    """A lesion focus of unit-ish size (body semi-axes around 10 mm) centred at ``center``.

    Scale it with :meth:`Solid.scaled` to the wanted volume.

    Parameters
    ----------
    kind : str
        ``sphere``, ``ellipsoid``, ``lobulated`` or ``infiltrative``.
    rng : numpy.random.Generator

    Raises
    ------
    ValueError
        If ``kind`` is unknown.
    """
    c = np.asarray(center, float)
    if kind == "sphere":
        return Solid((Ellipsoid(c, (10.0, 10.0, 10.0), np.eye(3)),), kind)
    if kind == "ellipsoid":
        axes = 10.0 * np.array([1.0, rng.uniform(0.55, 0.9), rng.uniform(0.35, 0.7)])
        return Solid((Ellipsoid(c, axes, random_rotation(rng)),), kind)
    if kind == "lobulated":
        body = Ellipsoid(c, 10.0 * np.array([1.0, rng.uniform(0.7, 0.9), rng.uniform(0.55, 0.8)]),
                         random_rotation(rng))
        parts = [body]
        for v in _unit_vectors(rng, int(rng.integers(3, 6))):
            r = rng.uniform(3.5, 6.0)
            # lobe centre on or just inside the body's surface in direction v
            q = body.radius(c + v)  # radius of the unit step -> distance to surface = 1/q
            dist = (1.0 / q) * rng.uniform(0.75, 0.95)
            axes = r * np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.6, 1.0)])
            parts.append(Ellipsoid(c + dist * v, axes, random_rotation(rng)))
        return Solid(tuple(parts), kind)
    if kind == "infiltrative":
        body = Ellipsoid(c, 10.0 * np.array([1.0, rng.uniform(0.65, 0.85), rng.uniform(0.5, 0.75)]),
                         random_rotation(rng))
        parts = [body]
        # a few broad lobes and many thin fingers reaching out along tissue planes
        for v in _unit_vectors(rng, 3):
            q = body.radius(c + v)
            parts.append(Ellipsoid(c + (0.8 / q) * v, rng.uniform(3.0, 4.5) * np.array([1.0, 0.8, 0.7]),
                                   random_rotation(rng)))
        for v in _unit_vectors(rng, int(rng.integers(8, 13))):
            q = body.radius(c + v)
            length = rng.uniform(5.0, 9.0)
            width = rng.uniform(1.1, 2.0)
            mid = c + (1.0 / q + 0.45 * length) * v
            parts.append(Ellipsoid(mid, (length, width, width * rng.uniform(0.6, 1.0)), _frame_along(v, rng)))
        return Solid(tuple(parts), kind)
    raise ValueError(f"unknown lesion shape {kind!r}")


def build_interior(kind: str, solid: Solid, rng: np.random.Generator) -> tuple:
    """Dark interior structures of a focus (intensity only, inside its envelope).

    ``cystic``: one or two dark cores (ellipsoids well inside the body);
    ``septated``: two or three thin dark sheets (1–1.5 mm) through the body.
    Any other ``kind`` has none.
    """
    body = solid.parts[0]
    if kind == "cystic":
        out = []
        for _ in range(int(rng.integers(1, 3))):
            off = body.rotation @ (body.semi_axes * rng.uniform(-0.25, 0.25, 3))
            axes = body.semi_axes.min() * rng.uniform(0.25, 0.4) * np.array([1.0, 0.85, 0.75])
            out.append(Ellipsoid(body.center + off, axes, random_rotation(rng)))
        return tuple(out)
    if kind == "septated":
        out = []
        for _ in range(int(rng.integers(2, 4))):
            off = body.rotation @ (body.semi_axes * rng.uniform(-0.35, 0.35, 3))
            out.append(Septum(body.center + off, rng.normal(size=3), rng.uniform(1.0, 1.5)))
        return tuple(out)
    return ()


def rotation_about(axis, angle_deg) -> np.ndarray:
    """Alias of :func:`volumetry.phantoms.geometry.rotation_matrix`."""
    return rotation_matrix(axis, angle_deg)
