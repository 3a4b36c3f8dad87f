"""MR-like rendering of a phantom scene on an acquisition grid.

The look is a fat-saturated T2-weighted image of a limb or trunk: a body
outline with a suppressed (dark) subcutaneous fat layer, textured muscle, a
bone with dark cortex and suppressed marrow, a dark arterial flow void and a
moderately bright vein, and the lesion much brighter than the muscle with its
own texture; dark cysts or septa inside it where the scene has them.

Partial volume: every voxel's lesion fraction is the mean of the inside test
over sub-samples spread across the pixel and across the *slice thickness*
(a rectangular slice profile), so a slice gap (spacing > thickness) leaves
tissue unseen exactly as on a scanner. Only the voxels near a surface (closer
than half the sampled cell's diagonal, by the shapes' conservative distance
bounds) are supersampled; the others take the value at their centre.

Noise is Rician: ``|s + n1 + i·n2|`` with ``n1, n2 ~ N(0, σ²)`` and
``σ = LESION_SIGNAL / snr``, i.e. the SNR is the nominal lesion signal over the
noise standard deviation of each channel. A smooth multiplicative bias field
(receive-coil shading, fixed to the scanner) multiplies the noiseless image.
"""
from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from .geometry import Grid
from .shapes import Septum, Solid, TrueVolume

#: Nominal signal levels (arbitrary units, stored as int16) of a T2 FS image.
AIR_SIGNAL = 0.0
FAT_SIGNAL = 110.0  # suppressed subcutaneous fat
MUSCLE_SIGNAL = 300.0
MARROW_SIGNAL = 90.0  # suppressed marrow
CORTEX_SIGNAL = 25.0
ARTERY_SIGNAL = 40.0  # flow void
VEIN_SIGNAL = 520.0
LESION_SIGNAL = 1000.0
DARK_INTERIOR_SIGNAL = 330.0  # septa, thrombosed / fibrous cores

#: Target spacing (mm) of the sub-samples used for partial volume.
SUBSAMPLE_MM = 0.4
#: Width (mm) of the smooth edges of the background anatomy.
EDGE_MM = 0.5


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """Independent generator for one purpose (shape, texture, noise ...) of a seed."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(purpose.encode())]))


@dataclasses.dataclass(frozen=True, eq=False)
class RandomField:
    """A smooth random field: a sum of plane waves with random directions,
    wavelengths (log-uniform between ``wavelength_mm``) and phases; unit
    variance, zero mean, continuous in space (sampled identically by any grid)."""

    k: np.ndarray
    phase: np.ndarray

    @classmethod
    def make(cls, rng: np.random.Generator, n_waves: int, wavelength_mm: tuple[float, float]) -> "RandomField":
        d = rng.normal(size=(n_waves, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        lam = np.exp(rng.uniform(np.log(wavelength_mm[0]), np.log(wavelength_mm[1]), n_waves))
        return cls(d * (2 * np.pi / lam)[:, None], rng.uniform(0, 2 * np.pi, n_waves))

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        out = np.zeros(pts.shape[:-1])
        for kk, ph in zip(self.k, self.phase):
            out += np.cos(pts @ kk + ph)
        return out * np.sqrt(2.0 / len(self.phase))

    def on_grid(self, origin: np.ndarray, steps: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """The field at the points ``origin + steps @ (i, j, k)`` of a ``[k, j, i]`` grid.

        Same values as :meth:`__call__` on those points (to rounding), computed
        separably: ``cos(a + b) = cos a·cos b − sin a·sin b`` with ``a`` along k
        and ``b`` in-plane, so the cost per voxel is two multiply-adds per wave,
        not a cosine.
        """
        nk, nj, ni = shape
        ii, jj, kk = np.arange(ni, dtype=float), np.arange(nj, dtype=float), np.arange(nk, dtype=float)
        out = np.zeros(shape)
        origin = np.asarray(origin, float)
        steps = np.asarray(steps, float)
        for kv, ph in zip(self.k, self.phase):
            di, dj, dk = kv @ steps
            a = kk * dk + (kv @ origin + ph)
            b = (jj * dj)[:, None] + (ii * di)[None, :]
            ca, sa = np.cos(a)[:, None, None], np.sin(a)[:, None, None]
            out += ca * np.cos(b)[None]
            out -= sa * np.sin(b)[None]
        return out * np.sqrt(2.0 / len(self.phase))


@dataclasses.dataclass(frozen=True, eq=False)
class Focus:
    """One lesion focus in body coordinates (mm) with its true volume."""

    label: int
    solid: Solid
    interior: tuple = ()
    truth: TrueVolume | None = None

    def posed(self, rotation: np.ndarray, translation: np.ndarray) -> "Focus":
        return Focus(self.label, self.solid.transformed(rotation, translation),
                     tuple(p.transformed(rotation, translation) for p in self.interior), self.truth)

    def scaled(self, length_factor: float) -> "Focus":
        """Scaled about its centre (volume by ``length_factor**3``, truth too)."""
        c = self.solid.center
        return Focus(self.label, self.solid.scaled(length_factor, c),
                     tuple(p.scaled(length_factor, c) for p in self.interior),
                     None if self.truth is None else self.truth.scaled(length_factor ** 3))


@dataclasses.dataclass(frozen=True, eq=False)
class Anatomy:
    """Background anatomy in body coordinates (mm): an elliptic cylinder along z.

    Attributes
    ----------
    semi_axes : tuple of float
        Body outline semi-axes (x, y) in mm.
    fat_mm : float
        Subcutaneous fat thickness.
    bone : tuple or None
        ``(x, y, radius)`` of a bone (cortex 2.5 mm).
    vessels : tuple
        ``(x, y, radius, signal)`` of vessels along z.
    texture_seed : int
    """

    semi_axes: tuple[float, float]
    fat_mm: float = 8.0
    bone: tuple | None = None
    vessels: tuple = ()
    texture_seed: int = 0

    @classmethod
    def around(cls, foci: list[Focus], *, seed: int) -> "Anatomy":
        """An anatomy big enough to hold the foci (body centred on the origin)."""
        rng = rng_for(seed, "anatomy")
        lo = np.min([f.solid.bounds()[0] for f in foci], axis=0) if foci else np.zeros(3)
        hi = np.max([f.solid.bounds()[1] for f in foci], axis=0) if foci else np.zeros(3)
        reach = np.maximum(np.abs(lo[:2]), np.abs(hi[:2]))
        ax = float(max(reach[0] + 28.0, 60.0) * rng.uniform(1.0, 1.1))
        ay = float(max(reach[1] + 24.0, 48.0) * rng.uniform(1.0, 1.1))
        fat = float(rng.uniform(6.0, 10.0))
        # bone and vessels where they keep 6 mm off every lesion bounding box
        def clear(x, y, r):
            for f in foci:
                flo, fhi = f.solid.bounds()
                dx = max(flo[0] - x, 0, x - fhi[0])
                dy = max(flo[1] - y, 0, y - fhi[1])
                if np.hypot(dx, dy) < r + 6.0:
                    return False
            inner = ((abs(x) + r) / (ax - fat)) ** 2 + ((abs(y) + r) / (ay - fat)) ** 2
            return inner < 1.0
        bone = None
        for _ in range(40):
            x, y, r = rng.uniform(-0.6, 0.6) * ax, rng.uniform(-0.6, 0.6) * ay, rng.uniform(8.0, 12.0)
            if clear(x, y, r):
                bone = (x, y, r)
                break
        vessels = []
        for signal in (ARTERY_SIGNAL, VEIN_SIGNAL):
            for _ in range(40):
                x, y, r = rng.uniform(-0.7, 0.7) * ax, rng.uniform(-0.7, 0.7) * ay, rng.uniform(2.0, 3.5)
                if clear(x, y, r) and (bone is None or np.hypot(x - bone[0], y - bone[1]) > bone[2] + r + 3):
                    vessels.append((x, y, r, signal))
                    break
        return cls((ax, ay), fat, bone, tuple(vessels), int(rng.integers(2**31)))


@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
    """Anatomy and lesion foci in body coordinates."""

    anatomy: Anatomy
    foci: tuple

    def posed_foci(self, rotation, translation) -> list[Focus]:
        return [f.posed(rotation, translation) for f in self.foci]


def _smooth_inside(signed_mm: np.ndarray) -> np.ndarray:
    """Fraction inside (1 deep inside, 0 outside) of a smooth edge of width EDGE_MM."""
    return 0.5 * (1.0 - np.tanh(signed_mm / EDGE_MM))


def render_background(anatomy: Anatomy, body_pts: np.ndarray, grid: tuple | None = None) -> np.ndarray:
    """Noiseless background signal at body-coordinate points ``(..., 3)``.

    ``grid = (origin, steps)`` says the points are ``origin + steps @ (i, j, k)``
    on a ``[k, j, i]`` array (body mm), which makes the texture much cheaper.
    """
    rng = rng_for(anatomy.texture_seed, "texture")
    muscle_field = RandomField.make(rng, 24, (6.0, 40.0))
    fat_field = RandomField.make(rng, 12, (5.0, 25.0))

    def muscle_tex(pts):
        return muscle_field(pts) if grid is None else muscle_field.on_grid(*grid, pts.shape[:-1])

    def fat_tex(pts):
        return fat_field(pts) if grid is None else fat_field.on_grid(*grid, pts.shape[:-1])

    x, y = body_pts[..., 0], body_pts[..., 1]
    ax, ay = anatomy.semi_axes
    rho = np.sqrt((x / ax) ** 2 + (y / ay) ** 2)
    f_body = _smooth_inside((rho - 1.0) * 0.5 * (ax + ay))
    bx, by = ax - anatomy.fat_mm, ay - anatomy.fat_mm
    rho_in = np.sqrt((x / bx) ** 2 + (y / by) ** 2)
    f_in = _smooth_inside((rho_in - 1.0) * 0.5 * (bx + by))
    muscle = MUSCLE_SIGNAL * (1.0 + 0.10 * muscle_tex(body_pts))
    fat = FAT_SIGNAL * (1.0 + 0.15 * fat_tex(body_pts))
    img = AIR_SIGNAL * (1 - f_body) + fat * (f_body - f_in) + muscle * f_in
    if anatomy.bone is not None:
        cx, cy, r = anatomy.bone
        d = np.hypot(x - cx, y - cy)
        f_outer = _smooth_inside(d - r)
        f_marrow = _smooth_inside(d - (r - 2.5))
        img = img * (1 - f_outer) + CORTEX_SIGNAL * (f_outer - f_marrow) + MARROW_SIGNAL * f_marrow
    for cx, cy, r, s in anatomy.vessels:
        f = _smooth_inside(np.hypot(x - cx, y - cy) - r)
        img = img * (1 - f) + s * f
    return img


def bias_field(grid: Grid, pts: np.ndarray, amplitude: float, seed: int) -> np.ndarray:
    """Smooth multiplicative receive-bias ``exp(amplitude·g)`` in scanner coordinates;
    ``g`` has unit variance with wavelengths 250–600 mm. 1 everywhere when amplitude is 0."""
    if amplitude == 0:
        return np.ones(pts.shape[:-1])
    field = RandomField.make(rng_for(seed, "bias"), 6, (250.0, 600.0))
    centre = grid.index_to_lps((np.asarray(grid.size) - 1) / 2.0)
    if pts.shape[:-1] == grid.shape:  # the whole grid: separable evaluation
        return np.exp(amplitude * field.on_grid(np.asarray(grid.origin) - centre, grid.matrix, grid.shape))
    return np.exp(amplitude * field(pts - centre))


def _subsample_offsets(grid: Grid) -> np.ndarray:
    """Sub-sample offsets (index units) across the pixel and the slice thickness."""
    def centred(n):
        return (np.arange(n) + 0.5) / n - 0.5
    si, sj, sk = grid.spacing
    n = [int(np.clip(np.ceil(s / SUBSAMPLE_MM), 3, 8)) for s in (si, sj)]
    nk = int(np.clip(np.ceil(grid.slice_thickness / SUBSAMPLE_MM), 3, 14))
    u, v, w = np.meshgrid(centred(n[0]), centred(n[1]), centred(nk) * grid.slice_thickness / sk, indexing="ij")
    return np.stack([u.ravel(), v.ravel(), w.ravel()], axis=1)


def _dark_classify(interior: tuple, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inside = np.zeros(pts.shape[:-1], bool)
    dist = np.full(pts.shape[:-1], np.inf)
    for p in interior:
        if isinstance(p, Septum):
            s = p.signed(pts)
            inside |= s <= 0
            dist = np.minimum(dist, np.abs(s))
        else:
            q = p.radius(pts)
            inside |= q <= 1.0
            dist = np.minimum(dist, p.distance_bound(q))
    return inside, dist


def focus_fractions(grid: Grid, focus: Focus) -> tuple[tuple[slice, slice, slice], np.ndarray, np.ndarray] | None:
    """Partial-volume fractions of one (posed) focus on ``grid``.

    Returns
    -------
    (box, frac, dark) or None
        ``box`` is the ``[k, j, i]`` slice tuple of the region computed,
        ``frac`` the fraction of each voxel's sampled cell inside the lesion
        envelope and ``dark`` the fraction inside its dark interior; None when
        the focus misses the grid.
    """
    lo, hi = focus.solid.bounds()
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    idx = grid.lps_to_index(corners)
    pad = np.array([1.0, 1.0, 1.0 + 0.5 * grid.slice_thickness / grid.spacing[2]])
    i0 = np.maximum(np.floor(idx.min(axis=0) - pad).astype(int), 0)
    i1 = np.minimum(np.ceil(idx.max(axis=0) + pad).astype(int) + 1, np.asarray(grid.size))
    if np.any(i1 <= i0):
        return None
    kk, jj, ii = np.meshgrid(np.arange(i0[2], i1[2]), np.arange(i0[1], i1[1]), np.arange(i0[0], i1[0]), indexing="ij")
    ijk = np.stack([ii, jj, kk], axis=-1).reshape(-1, 3).astype(float)
    centres = grid.index_to_lps(ijk)
    inside, dist = focus.solid.classify(centres)
    frac = inside.astype(float)
    reach = 0.5 * float(np.sqrt(grid.spacing[0] ** 2 + grid.spacing[1] ** 2 + grid.slice_thickness ** 2)) + 1e-6
    near = dist < reach
    dark = np.zeros_like(frac)
    if focus.interior:
        d_in, d_dist = _dark_classify(focus.interior, centres)
        dark = (d_in & inside).astype(float)
        near |= d_dist < reach  # voxels near a dark interior surface
    sel = np.flatnonzero(near)
    if sel.size:
        offsets = _subsample_offsets(grid) @ grid.matrix.T  # (ns, 3) mm
        ns = len(offsets)
        chunk = max(1, 400_000 // ns)
        for s in range(0, sel.size, chunk):
            ids = sel[s:s + chunk]
            x, y, z = (centres[ids, a, None] + offsets[None, :, a] for a in range(3))
            inn = focus.solid.inside_xyz(x, y, z)
            frac[ids] = inn.mean(axis=1)
            if focus.interior:
                dk, _ = _dark_classify(focus.interior, np.stack([x, y, z], axis=-1))
                dark[ids] = (dk & inn).mean(axis=1)
    box = (slice(i0[2], i1[2]), slice(i0[1], i1[1]), slice(i0[0], i1[0]))
    shape = (i1[2] - i0[2], i1[1] - i0[1], i1[0] - i0[0])
    return box, frac.reshape(shape), dark.reshape(shape)


def truth_voxels(frac: np.ndarray) -> np.ndarray:
    """Volume-preserving voxelisation of one focus's partial-volume fractions.

    The mask holds the ``round(sum(frac))`` voxels of largest coverage (ties in
    index order), so its voxel count equals the partial-volume sum to half a
    voxel: the best mask of the right volume (its threshold falls near 50 %
    coverage). A plain 50 % threshold has a curvature bias of 1–2 % for
    1 mL lesions on 3 mm slices; this has none. With a slice gap the sum is
    taken over the acquired slabs, as the image shows them.
    """
    n = int(round(float(frac.sum())))
    flat = frac.ravel()
    out = np.zeros(flat.shape, bool)
    if n > 0:
        order = np.argsort(-flat, kind="stable")[:n]
        out[order[flat[order] > 0]] = True
    return out.reshape(frac.shape)


@dataclasses.dataclass
class Rendering:
    """Output of :func:`render`: image (float, noiseless and noisy) and truth labels."""

    noiseless: np.ndarray
    image: np.ndarray
    labels: np.ndarray  # uint8, 0 background, focus label elsewhere
    lesion_fraction: np.ndarray
    dark_fraction: np.ndarray
    sigma: float


def render(
    scene: Scene,
    grid: Grid,
    *,
    pose: tuple[np.ndarray, np.ndarray] = (np.eye(3), np.zeros(3)),
    snr: float = 20.0,
    bias_amplitude: float = 0.15,
    seed: int = 0,
    lesion_texture: float = 0.12,
) -> Rendering:
    """Render ``scene`` on ``grid`` with the patient at ``pose``.

    Parameters
    ----------
    scene : Scene
        Anatomy and foci in body coordinates (mm).
    grid : Grid
        Acquisition grid in scanner LPS (mm).
    pose : (rotation, translation)
        Body -> scanner LPS rigid transform ``x = R·b + t`` (mm).
    snr : float
        Nominal lesion signal / noise σ (per channel). ``inf`` for no noise.
    bias_amplitude : float
        Log-amplitude of the bias field (0.15 ≈ ±15 % shading).
    seed : int
        Seed of the noise, the bias field and the lesion texture.
    lesion_texture : float
        Relative standard deviation of the lesion's signal texture.

    Raises
    ------
    ValueError
        If ``snr`` is not positive.
    """
    if not snr > 0:
        raise ValueError(f"snr must be > 0, got {snr}")
    rot, trans = (np.asarray(p, float) for p in pose)
    nk, nj, ni = grid.shape
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    pts = grid.index_to_lps(np.stack([ii, jj, kk], axis=-1).astype(float))
    body = (pts - trans) @ rot  # scanner -> body: R^T (x - t)
    body_origin = rot.T @ (np.asarray(grid.origin) - trans)
    body_steps = rot.T @ grid.matrix  # body mm per index step (columns i, j, k)
    img = render_background(scene.anatomy, body, (body_origin, body_steps))
    labels = np.zeros(grid.shape, np.uint8)
    best = np.zeros(grid.shape)
    total = np.zeros(grid.shape)
    dark_total = np.zeros(grid.shape)
    les_tex = RandomField.make(rng_for(scene.anatomy.texture_seed, "lesion-texture"), 24, (3.0, 14.0))
    for focus in scene.foci:
        posed = focus.posed(rot, trans)
        res = focus_fractions(grid, posed)
        if res is None:
            continue
        box, frac, dark = res
        start = np.array([box[2].start, box[1].start, box[0].start], float)
        les = LESION_SIGNAL * (1.0 + lesion_texture * les_tex.on_grid(body_origin + body_steps @ start, body_steps,
                                                                      frac.shape))
        sub = img[box]
        img[box] = sub * (1.0 - frac) + les * (frac - dark) + DARK_INTERIOR_SIGNAL * dark
        take = truth_voxels(frac) & (frac > best[box])
        labels[box] = np.where(take, focus.label, labels[box])
        best[box] = np.maximum(best[box], frac)
        total[box] += frac
        dark_total[box] += dark
    img = img * bias_field(grid, pts, bias_amplitude, seed)
    sigma = LESION_SIGNAL / snr if np.isfinite(snr) else 0.0
    if sigma > 0:
        rng = rng_for(seed, "noise")
        n1 = rng.normal(0.0, sigma, img.shape)
        n2 = rng.normal(0.0, sigma, img.shape)
        noisy = np.sqrt((img + n1) ** 2 + n2 ** 2)
    else:
        noisy = img.copy()
    return Rendering(img, noisy, labels, np.minimum(total, 1.0), np.minimum(dark_total, 1.0), sigma)
