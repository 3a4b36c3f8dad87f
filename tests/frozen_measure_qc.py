"""Frozen copies of the measurement and segmentation-QC code before the compiled kernels
(volumetry/measure/core.py, mesh.py, diameters.py and volumetry/segment/qc.py at commit
779ea9a), verbatim except for imports and module prefixes: the oracles of
tests/test_measure_kernels_fast.py and tests/test_measure_sample_trial_fast.py."""
# ruff: noqa
from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from skimage.measure import marching_cubes

from volumetry.errors import InputError
from volumetry.image import Volume
from volumetry.measure.core import FEW_VOXELS, Measurement
from volumetry.segment.common import CONN6, CONN26, bbox, padding_mask

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- diameters.py ----

#: Rows per block in the pairwise-distance search (bounds memory to ~block² floats).
_BLOCK = 2048


def _hull_points(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of ``points`` (all points if the hull is degenerate)."""
    pts = np.asarray(points, dtype=float)
    if len(pts) <= pts.shape[1] + 1:
        return pts
    try:
        return pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):  # flat or collinear set: every (distinct) point is a candidate
        return np.unique(pts, axis=0)


def max_feret(points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Largest distance between two of ``points`` (2D or 3D).

    Parameters
    ----------
    points : numpy.ndarray
        ``(n, d)`` coordinates in mm, ``n ≥ 1``.

    Returns
    -------
    length : float
        The maximum distance in mm (0 for a single point).
    p, q : numpy.ndarray
        The two end points.
    """
    pts = _hull_points(points)
    centred = pts - pts.mean(axis=0)  # small coordinates: the Gram expansion stays exact enough
    sq = (centred ** 2).sum(axis=1)
    best, bp, bq = -1.0, pts[0], pts[0]
    for start in range(0, len(pts), _BLOCK):
        blk = centred[start:start + _BLOCK]
        d2 = sq[start:start + _BLOCK, None] + sq[None, :] - 2.0 * (blk @ centred.T)
        a, b = np.unravel_index(int(np.argmax(d2)), d2.shape)
        exact = float(((pts[start + a] - pts[b]) ** 2).sum())
        if exact > best:
            best, bp, bq = exact, pts[start + a], pts[b]
    return float(np.sqrt(max(best, 0.0))), bp, bq


def orthogonal_diameters(points: np.ndarray) -> tuple[tuple[float, float, float], np.ndarray]:
    """The three orthogonal diameters ``(L, W, H)`` of a 3D point set (see module doc).

    Parameters
    ----------
    points : numpy.ndarray
        ``(n, 3)`` surface points in LPS mm.

    Returns
    -------
    diameters : tuple of float
        ``(L, W, H)`` in mm, ``L ≥ W``; ``H`` may exceed ``W`` for odd shapes
        only by the definition's order (it is not sorted).
    axes : numpy.ndarray
        3×3, rows are the unit LPS directions of L, W and H.
    """
    pts = _hull_points(points)
    length, p, q = max_feret(pts)
    u = (q - p) / length if length > 0 else np.array([1.0, 0.0, 0.0])
    # orthonormal basis (e1, e2) of the plane perpendicular to u
    helper = np.eye(3)[int(np.argmin(np.abs(u)))]
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    plane = np.c_[pts @ e1, pts @ e2]
    width, p2, q2 = max_feret(plane)
    if width > 0:
        d = (q2 - p2) / width
        v = d[0] * e1 + d[1] * e2
    else:
        v = e1
    w = np.cross(u, v)
    proj = pts @ w
    height = float(proj.max() - proj.min())
    return (float(length), float(width), height), np.vstack([u, v, w])


def longest_inplane_diameter(crop: np.ndarray, matrix: np.ndarray) -> tuple[float, int]:
    """Longest diameter (mm) within one slice of a cropped mask, over all slices.

    The outline of a slice is its marching-squares contour at 0.5: the
    mid-points of the edges between a mask pixel and a background pixel
    (4-neighbours). Its longest chord joins two vertices of its convex hull,
    and every hull vertex is the first or last outline point of its row and of
    its column, so only those candidates are compared (all pairs, exact
    distances in mm; a convex hull first when a slice has many). Slices are
    measured from the widest candidate box down; a slice whose box (an upper
    bound of its diameter, with a margin far above rounding) is shorter than
    the longest found so far cannot be the longest nor tie with it, and is not
    measured.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        The mask inside its bounding box, indexed ``[k, j, i]``.
    matrix : numpy.ndarray
        ``direction @ diag(spacing)`` of the grid; its first two columns map
        in-plane index steps to mm.

    Returns
    -------
    length : float
        Longest in-plane diameter in mm (0 when no slice holds a voxel).
    k : int
        Slice of ``crop`` (0-based, relative to the crop) where it was found:
        the first slice whose length is within 1e-12 (relative) of the longest.
    """
    inplane = np.asarray(matrix, dtype=float)[:, :2]
    c0, c1 = inplane[:, 0], inplane[:, 1]
    lengths = np.zeros(crop.shape[0])  # 0 for a slice not measured (it is not the longest)
    k, x, y = _outline_points(np.asarray(crop, dtype=bool))
    if len(k):
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        ends = np.r_[starts[1:], len(k)]
        # |dx c0 + dy c1| <= |dx| |c0| + |dy| |c1|: a bound of every slice's diameter (mm)
        span_x = np.maximum.reduceat(x, starts) - np.minimum.reduceat(x, starts)
        span_y = np.maximum.reduceat(y, starts) - np.minimum.reduceat(y, starts)
        bound = (span_x * float(np.linalg.norm(c0)) + span_y * float(np.linalg.norm(c1))) * (1.0 + _BOUND_MARGIN)
        longest = 0.0
        for s in np.argsort(-bound, kind="stable").tolist():
            if bound[s] < longest * (1.0 - _BOUND_MARGIN):
                break  # this slice and the rest are shorter than the longest by far more than _TIE
            a, b = int(starts[s]), int(ends[s])
            xs, ys = x[a:b], y[a:b]
            pts = np.outer(xs, c0) + np.outer(ys, c1)  # (i, j) index units -> mm
            if len(pts) > _PAIRWISE_MAX:
                pts = _hull_points_2d(np.c_[xs, ys], pts)
            lengths[k[a]] = _max_pair_distance(pts)
            longest = max(longest, lengths[k[a]])
    best = float(lengths.max()) if len(lengths) else 0.0
    if best <= 0.0:
        return 0.0, 0
    k_best = int(np.flatnonzero(lengths >= best * (1.0 - _TIE))[0])
    return best, k_best


#: Relative tolerance under which two slices' in-plane diameters are the same length (first slice wins).
_TIE = 1e-12

#: Above this many candidates in a slice, reduce them to their convex hull before comparing all pairs.
_PAIRWISE_MAX = 64

#: Relative margin of the slice bound in :func:`longest_inplane_diameter` (rounding is ~1e-15).
_BOUND_MARGIN = 1e-6


def _outline_points(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(k, x, y)`` of the outline points (index units, ``x`` along i, ``y`` along j,
    half-integers at edge mid-points) that are the first or last of their row and of their
    column, ordered by slice ``k`` (stable)."""
    nk, nj, ni = crop.shape
    p = np.zeros((nk, nj + 2, ni + 2), dtype=bool)  # np.pad's zero border, without its overhead
    p[:, 1:-1, 1:-1] = crop
    # mid-points of horizontal edges (between columns c and c+1 of row r): x = c + 0.5, y = r
    h = p[:, :, 1:] != p[:, :, :-1]
    # mid-points of vertical edges (between rows r and r+1 of column c): x = c, y = r + 0.5
    v = p[:, 1:, :] != p[:, :-1, :]
    hk, hr, hc = np.nonzero(_ends(h, 2) & _ends(h, 1))
    vk, vr, vc = np.nonzero(_ends(v, 2) & _ends(v, 1))
    k = np.concatenate([hk, vk])
    x = np.concatenate([hc + 0.5, vc.astype(float)])
    y = np.concatenate([hr.astype(float), vr + 0.5])
    order = np.argsort(k, kind="stable")
    return k[order], x[order], y[order]


def _ends(a: np.ndarray, axis: int) -> np.ndarray:
    """True at the first and the last True of every line of ``a`` (3D) along ``axis`` (1 or 2)."""
    n = a.shape[axis]
    has = a.any(axis=axis)
    first = np.argmax(a, axis=axis)
    last = n - 1 - np.argmax(np.flip(a, axis=axis), axis=axis)
    out = np.zeros_like(a)
    outer, inner = np.ogrid[:has.shape[0], :has.shape[1]]
    if axis == 2:
        out[outer, inner, first] = has
        out[outer, inner, last] = has
    else:
        out[outer, first, inner] = has
        out[outer, last, inner] = has
    return out


def _hull_points_2d(xy: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Rows of ``pts`` at the convex-hull vertices of the 2D index points ``xy`` (exact half-integers)."""
    try:
        return pts[ConvexHull(xy).vertices]
    except (QhullError, ValueError):  # collinear: every point is a candidate
        return pts


def _max_pair_distance(pts: np.ndarray) -> float:
    """Largest distance (mm) between two rows of ``pts``, computed exactly from differences."""
    best = 0.0
    for start in range(0, len(pts), _BLOCK):
        d = pts[start:start + _BLOCK, None, :] - pts[None, :, :]
        best = max(best, float(np.einsum("abk,abk->ab", d, d).max()))
    return float(np.sqrt(best))


# ---------------------------------------------------------------- mesh.py ----

#: Iso-level of the surface between background (0) and mask (1).
ISO_LEVEL = 0.5

#: Orientation of scikit-image's Lewiner faces in the ``[k, j, i]`` array frame
#: (a closed object with values above the level has a *negative* signed volume
#: there). Checked by ``tests/test_measure.py`` on anisotropic, mirrored and
#: rotated grids.
_SKIMAGE_ORIENTATION = -1.0


def surface_lps(crop: np.ndarray, offset_ijk, matrix: np.ndarray, origin) -> tuple[np.ndarray, np.ndarray]:
    """Marching-cubes surface of a cropped binary mask, vertices in LPS mm.

    Parameters
    ----------
    crop : numpy.ndarray of bool
        The mask inside its bounding box, indexed ``[k, j, i]``.
    offset_ijk : sequence of int
        Index ``(i, j, k)`` of ``crop[0, 0, 0]`` on the full grid.
    matrix : numpy.ndarray
        ``direction @ diag(spacing)`` of the grid (3×3, mm per index).
    origin : sequence of float
        LPS position (mm) of voxel ``(0, 0, 0)`` of the full grid.

    Returns
    -------
    vertices : numpy.ndarray
        ``(n, 3)`` LPS positions in mm.
    faces : numpy.ndarray
        ``(m, 3)`` vertex indices, consistently oriented.

    Raises
    ------
    ValueError
        If the crop holds no mask voxel (no surface).
    """
    padded = np.pad(np.asarray(crop, dtype=np.float32), 1)
    verts_kji, faces, _, _ = marching_cubes(padded, level=ISO_LEVEL, method="lewiner")
    ijk = verts_kji[:, ::-1] + (np.asarray(offset_ijk, dtype=float) - 1.0)
    lps = ijk @ np.asarray(matrix, dtype=float).T + np.asarray(origin, dtype=float)
    return lps, faces


def signed_volume_mm3(vertices: np.ndarray, faces: np.ndarray, matrix: np.ndarray) -> float:
    """Volume (mm³) enclosed by a closed surface from :func:`surface_lps`.

    Sum of the signed tetrahedra (centroid, triangle); cavities subtract. The
    sign is normalised with the handedness of the grid (``det(matrix)``) and of
    the ``[k, j, i]`` → ``(i, j, k)`` axis swap, so a solid object is positive.

    Parameters
    ----------
    vertices, faces : numpy.ndarray
        The mesh, vertices in mm.
    matrix : numpy.ndarray
        ``direction @ diag(spacing)`` of the grid the mesh came from.

    Returns
    -------
    float
        Enclosed volume in mm³.
    """
    v = vertices - vertices.mean(axis=0)  # centred: no precision loss far from the origin
    tri = v[faces]
    six_v = np.einsum("ij,ij->i", tri[:, 0], _cross(tri[:, 1], tri[:, 2])).sum()
    # [k,j,i] -> (i,j,k) swaps two axes (handedness -1); the grid matrix adds sign(det).
    sign = _SKIMAGE_ORIENTATION * -1.0 * np.sign(np.linalg.det(matrix))
    return float(sign * six_v / 6.0)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.cross(a, b)`` of two ``(n, 3)`` float64 arrays: the same products and differences in
    the same order (so the same numbers), without its per-call conversions."""
    out = np.empty(a.shape)
    tmp = np.empty(a.shape[0])
    for c, (p, q) in enumerate(((1, 2), (2, 0), (0, 1))):
        np.multiply(a[:, p], b[:, q], out=out[:, c])
        np.multiply(a[:, q], b[:, p], out=tmp)
        out[:, c] -= tmp
    return out


# ---------------------------------------------------------------- core.py ----

def _binary(mask: Volume, label: int | None) -> np.ndarray:
    arr = mask.array
    if label is not None and label == 0:
        raise InputError("label 0 is the background of a label map, not a lesion; "
                         "give the lesion's label (1 or more), or omit the label for a 0/1 mask")
    if label is not None:
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)):
                raise InputError("the mask holds NaN or infinite values; export it as an integer label map")
            if not np.all(arr == np.round(arr)):
                raise InputError("the mask holds non-integer values (e.g. a probability map), so it is not a "
                                 "label map; threshold it into a binary mask or export a label map")
        return arr == label
    if arr.dtype == bool:
        return arr
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        values = np.unique(arr[bad])
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (" ..." if len(values) > 8 else "")
        raise InputError(
            f"the mask is not binary (values other than 0 and 1: {shown}); "
            "pass the lesion's label (label=N, or --label N on the command line)"
        )
    return arr == 1


def measure(mask: Volume, image: Volume | None = None, *, label: int | None = None) -> Measurement:
    """Measure a lesion mask.

    Parameters
    ----------
    mask : Volume
        Binary mask (bool, or 0/1), or a label map when ``label`` is given.
    image : Volume, optional
        The image the mask was drawn on; must share its grid. Used only for
        intensity statistics.
    label : int, optional
        Label value of the lesion in a label map.

    Returns
    -------
    Measurement
        ``status="empty"`` with a reason when no voxel is selected (never 0 mL).

    Raises
    ------
    GeometryMismatchError
        If ``image`` is given and the mask is not on its grid.
    InputError
        If the mask is not binary and no ``label`` is given, ``label`` is 0 (the
        background), or a ``label`` is given but the mask holds non-integer or
        non-finite values.
    """
    if image is not None:
        image.require_same_grid(mask, "mask")
    sel = _binary(mask, label)
    voxel_mm3 = mask.voxel_volume_mm3
    n = int(np.count_nonzero(sel))
    if n == 0:
        if label is not None:
            present = [v for v in np.unique(mask.array)[:9].tolist() if v != 0]
            why = f"no voxel has label {label} (non-zero labels present: {present or 'none'})"
        else:
            why = "the mask is empty (no voxel set)"
        return Measurement(status="empty", reason=why, label=label, voxel_volume_mm3=voxel_mm3,
                           flags=("empty-mask",))

    shape = np.array(sel.shape)  # (nk, nj, ni)
    lo, hi = _bounding_box(sel)
    crop = sel[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    matrix = mask.direction @ np.diag(mask.spacing)
    offset_ijk = lo[::-1]
    flags: list[str] = []

    touches = bool(np.any(lo == 0) or np.any(hi == shape))
    if touches:
        flags.append("touches-border")

    _, n_comp = ndimage.label(crop, structure=np.ones((3, 3, 3), bool))
    if n_comp > 1:
        flags.append("multiple-components")
    if n < FEW_VOXELS:
        flags.append("few-voxels")

    low_ml, high_ml = _band(sel, lo, hi, voxel_mm3)

    mesh_ml = diams = axes = ell_ml = None
    try:
        verts, faces = surface_lps(crop, offset_ijk, matrix, mask.origin)
        mesh_ml = signed_volume_mm3(verts, faces, matrix) / 1000.0
        d, ax = orthogonal_diameters(verts)
        diams = d
        axes = tuple(tuple(float(x) for x in row) for row in ax)
        ell_ml = math.pi / 6.0 * d[0] * d[1] * d[2] / 1000.0
    except (RuntimeError, ValueError) as exc:  # pragma: no cover - defensive, marching cubes on a non-empty crop
        log.warning("marching cubes failed on the mask: %s", exc)
        flags.append("mesh-failed")
    inplane, k_rel = longest_inplane_diameter(crop, matrix)

    stats: dict[str, float | None] = dict.fromkeys(
        ("intensity_mean", "intensity_sd", "intensity_median", "intensity_p5", "intensity_p95"))
    if image is not None:
        vals = image.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][crop].astype(np.float64)
        p5, med, p95 = np.percentile(vals, [5, 50, 95])
        stats = {"intensity_mean": float(vals.mean()), "intensity_sd": float(vals.std()),
                 "intensity_median": float(med), "intensity_p5": float(p5), "intensity_p95": float(p95)}

    return Measurement(
        status="ok",
        label=label,
        n_voxels=n,
        voxel_volume_mm3=voxel_mm3,
        volume_ml=n * voxel_mm3 / 1000.0,
        mesh_volume_ml=mesh_ml,
        volume_low_ml=low_ml,
        volume_high_ml=high_ml,
        diameters_mm=diams,
        diameter_axes=axes,
        longest_inplane_diameter_mm=float(inplane),
        longest_inplane_slice=int(lo[0] + k_rel),
        ellipsoid_volume_ml=ell_ml,
        n_components=int(n_comp),
        touches_border=touches,
        bbox_ijk=(tuple(int(x) for x in lo[::-1]), tuple(int(x) for x in (hi - 1)[::-1])),
        flags=tuple(flags),
        **stats,
    )


def _bounding_box(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive-exclusive ``[k, j, i]`` index bounds of the True voxels (at least one).

    The slices holding the mask are found first; the row and column bounds are
    then searched in that slab only (a small lesion in a large grid reads the
    grid once).
    """
    ks = np.flatnonzero(sel.reshape(sel.shape[0], -1).any(axis=1))
    slab = sel[ks[0]:ks[-1] + 1]
    js = np.flatnonzero(slab.any(axis=(0, 2)))
    is_ = np.flatnonzero(slab[:, js[0]:js[-1] + 1].any(axis=(0, 1)))
    return np.array([ks[0], js[0], is_[0]]), np.array([ks[-1] + 1, js[-1] + 1, is_[-1] + 1])


def _band(sel: np.ndarray, lo: np.ndarray, hi: np.ndarray, voxel_mm3: float) -> tuple[float, float]:
    """Voxel volumes (mL) of the mask eroded and dilated by one voxel (6-connected).

    Works on the bounding box grown by one voxel (clipped to the image).
    Erosion treats outside-the-image as background (a voxel on the box's face
    whose outer neighbour is off the box is eroded: inside the image that
    neighbour is background by construction of the box); dilation never adds
    voxels outside the image. Both are plain shifts of the box along the six
    face directions (the 6-connected structuring element).
    """
    shape = np.array(sel.shape)
    glo = np.maximum(lo - 1, 0)
    ghi = np.minimum(hi + 1, shape)
    box = sel[glo[0]:ghi[0], glo[1]:ghi[1], glo[2]:ghi[2]]
    eroded = box.copy()
    dilated = box.copy()
    for axis in range(3):
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(0, -1), slice(1, None)
        lower, upper = tuple(lower), tuple(upper)
        eroded[upper] &= box[lower]  # neighbour at -1 along the axis
        eroded[lower] &= box[upper]  # neighbour at +1
        face = [slice(None)] * 3
        face[axis] = 0
        eroded[tuple(face)] = False
        face[axis] = -1
        eroded[tuple(face)] = False
        dilated[upper] |= box[lower]
        dilated[lower] |= box[upper]
    return (int(np.count_nonzero(eroded)) * voxel_mm3 / 1000.0,
            int(np.count_nonzero(dilated)) * voxel_mm3 / 1000.0)


# ---------------------------------------------------------------- segment/qc.py ----

#: A box cutting more than this fraction of the region (dimensionless) is flagged.
OUTSIDE_BOX_FRACTION = 0.05
#: Seed intensity farther than this many lesion SDs from the lesion mean is flagged.
SEED_Z_MAX = 3.0
#: Contrast below this many noise SDs is flagged.
LOW_CONTRAST_SD = 4.0
#: Masks with fewer voxels than this are flagged.
QC_FEW_VOXELS = 30
#: A mask with more than this fraction (dimensionless) of its opened voxels beyond a narrow neck is flagged.
NECK_FRACTION = 0.05
#: On thick slices, a slice whose mask area is below this fraction (dimensionless) of the largest
#: slice area on each side of it is a waist (:func:`neck_fraction`). Audit: single-lesion phantoms
#: and expert masks on 3-6 mm slices have no slice below 0.92 of both peaks; two lesions stacked
#: across the slices and merged through the slice between them, 0.04-0.43.
WAIST_RATIO = 0.5


def mask_qc(crop_image: np.ndarray, crop_mask: np.ndarray, seed_value: float | None,
            touches_image_border: bool, spacing_kji=None) -> dict:
    """QC numbers of a (non-empty) crop mask.

    Parameters
    ----------
    crop_image : numpy.ndarray
        Intensities of the crop.
    crop_mask : numpy.ndarray
        Boolean mask on the crop.
    seed_value : float or None
        Intensity at the seeds.
    touches_image_border : bool
        Whether the mask reaches the image's edge.
    spacing_kji : sequence of float, optional
        Voxel spacing (mm) along k, j, i; with it, ``neck_fraction`` is computed.

    Returns
    -------
    dict
        ``n_voxels``, ``n_components``, ``lesion_mean``, ``lesion_sd``,
        ``seed_z`` (seed intensity z-score against the lesion), ``touches_border`` (0/1),
        ``touches_padding`` (0/1: a mask voxel is a face neighbour of a padding voxel,
        :func:`volumetry.segment.common.padding_mask`), and with ``spacing_kji``
        ``neck_fraction`` (:func:`neck_fraction`).
    """
    vals = crop_image[crop_mask]
    sl = bbox(crop_mask)
    _, ncomp = ndimage.label(crop_mask if sl is None else crop_mask[sl], structure=CONN26)
    mean, sd = float(vals.mean()), float(vals.std())
    seed_z = float((seed_value - mean) / sd) if seed_value is not None and sd > 0 else float("nan")
    out = {"n_voxels": np.count_nonzero(crop_mask), "n_components": int(ncomp), "lesion_mean": mean,
           "lesion_sd": sd, "seed_z": seed_z, "touches_border": int(bool(touches_image_border)),
           "touches_padding": int(_touches_padding(crop_image, crop_mask))}
    if spacing_kji is not None:
        out["neck_fraction"] = neck_fraction(crop_mask, spacing_kji)
    return out


def neck_element(spacing_kji) -> np.ndarray:
    """The structuring element of :func:`neck_fraction`: 3 voxels wide along the two finest axes,
    and along the third only when its voxels are at most 1.5 × the second finest (near-isotropic)."""
    sp = np.asarray(spacing_kji, float)
    order = np.argsort(sp, kind="stable")
    shape = [3, 3, 3]
    if sp[order[2]] > 1.5 * sp[order[1]]:
        shape[int(order[2])] = 1
    return np.ones(shape, dtype=bool)


def neck_fraction(crop_mask: np.ndarray, spacing_kji) -> float:
    """Share of a mask lying in bodies joined to its largest body only through narrow necks.

    The mask is opened (eroded, then dilated) by :func:`neck_element`, a block 3 voxels
    wide in-plane (and across slices when they are about as fine): whatever is narrower
    than the block — a neck, a spur, the thin rim of partial-volume voxels — disappears,
    and bodies joined only through such necks come apart. Two lesions 3 mm apart on 4 mm
    slices, merged through the slice that straddles the gap, are two bodies here.

    On slices too thick for the block to have depth (the element is one voxel across them),
    a merger *across* the slices shows no in-plane neck when the two lesions' caps touch over
    a wide area; it shows as a waist instead: a slice whose mask area is below
    :data:`WAIST_RATIO` of the largest slice area on each side (:func:`waist_fraction`).

    Parameters
    ----------
    crop_mask : numpy.ndarray of bool
        The mask (any crop of the image holding it).
    spacing_kji : sequence of float
        Voxel spacing (mm) along k, j, i.

    Returns
    -------
    float
        The larger of ``1 - largest / total`` of the opened mask's 26-connected bodies
        (0 for one body, or none: a mask thinner than the block everywhere) and, on thick
        slices, :func:`waist_fraction`.
    """
    sl = bbox(crop_mask, 1)
    if sl is None:
        return 0.0
    element = neck_element(spacing_kji)
    waist = waist_fraction(crop_mask[sl], int(np.argmin(element.shape))) if min(element.shape) == 1 else 0.0
    box = np.pad(crop_mask[sl], 1)  # the opening must not treat the crop's edge as mask
    opened = ndimage.binary_opening(box, structure=element)
    lab, n = ndimage.label(opened, structure=CONN26)
    if n < 2:
        return waist
    sizes = np.bincount(lab.ravel())[1:]
    return max(waist, float(1.0 - sizes.max() / sizes.sum()))


def waist_fraction(mask: np.ndarray, axis: int) -> float:
    """Share of a mask beyond its deepest waist across the slices along ``axis``.

    A waist is a slice whose mask area is below :data:`WAIST_RATIO` of the largest slice
    area on each side of it; what lies beyond it, on the side with less of the mask
    (the waist slice itself counted on neither side), may be another lesion.

    Parameters
    ----------
    mask : numpy.ndarray of bool
        The mask.
    axis : int
        The axis across the (thick) slices.

    Returns
    -------
    float
        The largest such share over the waists (dimensionless, 0 to 0.5); 0 without a waist.
    """
    area = np.count_nonzero(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)).astype(float)
    nz = np.flatnonzero(area)
    if nz.size == 0 or nz[-1] - nz[0] < 2:
        return 0.0
    area = area[nz[0]:nz[-1] + 1]
    before = np.cumsum(area) - area  # mask area on the slices before each slice
    after = area.sum() - before - area
    peak_before = np.maximum.accumulate(np.concatenate(([0.0], area[:-1])))  # largest area before each slice
    peak_after = np.concatenate((np.maximum.accumulate(area[::-1])[::-1][1:], [0.0]))  # largest area after it
    waist = area < WAIST_RATIO * np.minimum(peak_before, peak_after)
    if not waist.any():
        return 0.0
    return float(np.max(np.minimum(before, after)[waist]) / area.sum())


def _touches_padding(crop_image: np.ndarray, crop_mask: np.ndarray) -> bool:
    """Whether a mask voxel has a face neighbour that is padding (zero-filled / masked-out voxels)."""
    pad = padding_mask(crop_image)
    if not pad.any():
        return False
    return bool(np.any(ndimage.binary_dilation(crop_mask, CONN6) & pad & ~crop_mask))
