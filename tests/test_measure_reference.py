"""``volumetry.measure.measure`` as it was before the speed work (commit 78eb3f5), kept as the
slow reference of tests/test_measure_equivalence.py (no test in this module).

Copied verbatim from volumetry/measure/{core,diameters,mesh}.py; only the entry point is
renamed ``reference_measure`` and the module prefixes ``_diam.`` / ``_mesh.`` dropped.
Do not "fix" anything here: it is the behaviour the fast code must reproduce.
"""
from __future__ import annotations

import logging
import math

import numpy as np

from volumetry.errors import InputError
from volumetry.image import Volume
from volumetry.measure.core import FEW_VOXELS, Measurement

log = logging.getLogger(__name__)


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
    from skimage.measure import marching_cubes

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
    six_v = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()
    # [k,j,i] -> (i,j,k) swaps two axes (handedness -1); the grid matrix adds sign(det).
    sign = _SKIMAGE_ORIENTATION * -1.0 * np.sign(np.linalg.det(matrix))
    return float(sign * six_v / 6.0)


#: Rows per block in the pairwise-distance search (bounds memory to ~block² floats).
_BLOCK = 2048


def _hull_points(points: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of ``points`` (all points if the hull is degenerate)."""
    from scipy.spatial import ConvexHull, QhullError

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
        Longest in-plane diameter in mm.
    k : int
        Slice of ``crop`` (0-based, relative to the crop) where it was found.
    """
    from skimage.measure import find_contours

    inplane = np.asarray(matrix, dtype=float)[:, :2]
    best, best_k = 0.0, 0
    for k in range(crop.shape[0]):
        sl = crop[k]
        if not sl.any():
            continue
        contours = find_contours(np.pad(sl.astype(np.float32), 1), 0.5)
        pts_ji = np.concatenate(contours)
        pts = pts_ji[:, ::-1] @ inplane.T  # (i, j) index steps -> mm (translation irrelevant)
        length, _, _ = max_feret(_planar(pts, inplane))
        if length > best:
            best, best_k = length, k
    return best, best_k


def _planar(pts3: np.ndarray, inplane: np.ndarray) -> np.ndarray:
    """Express in-plane 3D points in 2D coordinates of the slice plane (for a 2D hull)."""
    q, _ = np.linalg.qr(inplane)
    return pts3 @ q


def _binary(mask: Volume, label: int | None) -> np.ndarray:
    arr = mask.array
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


def reference_measure(mask: Volume, image: Volume | None = None, *, label: int | None = None) -> Measurement:
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
        If the mask is not binary and no ``label`` is given, or a ``label`` is
        given but the mask holds non-integer or non-finite values.
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
    present = [np.flatnonzero(sel.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    lo = np.array([p[0] for p in present])
    hi = np.array([p[-1] + 1 for p in present])
    crop = sel[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    matrix = mask.direction @ np.diag(mask.spacing)
    offset_ijk = lo[::-1]
    flags: list[str] = []

    touches = bool(np.any(lo == 0) or np.any(hi == shape))
    if touches:
        flags.append("touches-border")

    from scipy import ndimage

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


def _band(sel: np.ndarray, lo: np.ndarray, hi: np.ndarray, voxel_mm3: float) -> tuple[float, float]:
    """Voxel volumes (mL) of the mask eroded and dilated by one voxel (6-connected).

    Works on the bounding box grown by one voxel (clipped to the image) and
    padded with background, so erosion treats outside-the-image as background
    and dilation never adds voxels outside the image.
    """
    from scipy import ndimage

    shape = np.array(sel.shape)
    glo = np.maximum(lo - 1, 0)
    ghi = np.minimum(hi + 1, shape)
    box = sel[glo[0]:ghi[0], glo[1]:ghi[1], glo[2]:ghi[2]]
    padded = np.pad(box, 1)
    inside = np.pad(np.ones(box.shape, bool), 1)
    st = ndimage.generate_binary_structure(3, 1)
    eroded = ndimage.binary_erosion(padded, structure=st, border_value=0)
    dilated = ndimage.binary_dilation(padded, structure=st) & inside
    return (int(np.count_nonzero(eroded)) * voxel_mm3 / 1000.0,
            int(np.count_nonzero(dilated)) * voxel_mm3 / 1000.0)
