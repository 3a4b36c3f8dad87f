"""Measure one lesion mask: volumes, uncertainty band, diameters, shape flags, intensities.

Pure computation on :class:`~volumetry.image.Volume` values; no file access.
Everything is computed inside the mask's bounding box (plus a one-voxel margin),
never on the whole image (whole-volume morphology is slow, see DESIGN.md).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import numpy as np

from .._morphology import component_sizes26
from ..errors import InputError
from ..image import Volume
from . import diameters as _diam
from . import mesh as _mesh
from ._kernels import band_counts

log = logging.getLogger(__name__)

#: A mask with fewer voxels than this is flagged ``few-voxels``: partial-volume
#: error dominates (a one-voxel boundary shell is most of the lesion).
FEW_VOXELS = 20

#: Flags a :class:`Measurement` may carry.
FLAGS = {
    "empty-mask": "the mask has no voxel (with the requested label)",
    "touches-border": "the mask reaches the outer face of the image grid: the lesion may extend outside the image",
    "multiple-components": "the mask has more than one 26-connected component",
    "few-voxels": f"fewer than {FEW_VOXELS} voxels: partial-volume error dominates",
    "mesh-failed": "the marching-cubes surface could not be built; mesh volume and diameters are empty",
}

STATUSES = ("ok", "empty", "failed")


@dataclasses.dataclass(frozen=True)
class Measurement:
    """The measurement of one lesion mask.

    Attributes
    ----------
    status : str
        ``"ok"``, ``"empty"`` (no mask voxel: no measurable lesion) or
        ``"failed"`` (could not be measured; see ``reason``).
    reason : str or None
        Why the status is not ``"ok"``.
    label : int or None
        Label value measured (None for a binary mask).
    n_voxels : int
        Number of mask voxels.
    voxel_volume_mm3 : float or None
        Volume of one voxel (mm³) from the geometry.
    volume_ml : float or None
        Voxel count × voxel volume / 1000 (mL). None unless ``status == "ok"``.
    mesh_volume_ml : float or None
        Volume enclosed by the closed marching-cubes surface at 0.5 (mL),
        vertices in LPS mm (spacing and direction applied).
    volume_low_ml, volume_high_ml : float or None
        Voxel volume (mL) of the mask eroded / dilated by one voxel
        (6-connected structuring element; dilation stays inside the image).
    diameters_mm : tuple of float or None
        ``(L, W, H)``: longest diameter, longest perpendicular to it, extent
        perpendicular to both (mm); see :mod:`volumetry.measure.diameters`.
    diameter_axes : tuple or None
        Unit LPS directions of L, W, H (three 3-tuples).
    longest_inplane_diameter_mm : float or None
        Longest diameter within one slice of the grid (mm).
    longest_inplane_slice : int or None
        Slice index ``k`` (full grid) where it lies.
    ellipsoid_volume_ml : float or None
        ``π/6·L·W·H / 1000`` (mL).
    n_components : int
        26-connected components of the mask.
    touches_border : bool
        True when a mask voxel lies on the outer face of the grid.
    bbox_ijk : tuple or None
        ``((i0, j0, k0), (i1, j1, k1))`` inclusive index bounds of the mask.
    intensity_mean, intensity_sd, intensity_median, intensity_p5, intensity_p95 : float or None
        Image intensities inside the mask (population SD; linear-interpolated
        percentiles); None when no image is given.
    flags : tuple of str
        Keys of :data:`FLAGS`.
    """

    status: str
    reason: str | None = None
    label: int | None = None
    n_voxels: int = 0
    voxel_volume_mm3: float | None = None
    volume_ml: float | None = None
    mesh_volume_ml: float | None = None
    volume_low_ml: float | None = None
    volume_high_ml: float | None = None
    diameters_mm: tuple[float, float, float] | None = None
    diameter_axes: tuple[tuple[float, float, float], ...] | None = None
    longest_inplane_diameter_mm: float | None = None
    longest_inplane_slice: int | None = None
    ellipsoid_volume_ml: float | None = None
    n_components: int = 0
    touches_border: bool = False
    bbox_ijk: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None
    intensity_mean: float | None = None
    intensity_sd: float | None = None
    intensity_median: float | None = None
    intensity_p5: float | None = None
    intensity_p95: float | None = None
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        object.__setattr__(self, "flags", tuple(self.flags))

    @classmethod
    def failed(cls, reason: str, *, label: int | None = None) -> "Measurement":
        """A measurement that could not be made (every value empty, never 0)."""
        return cls(status="failed", reason=reason, label=label)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists, numpy scalars Python numbers)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, (tuple, list, np.ndarray)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    return v


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
    bounds = _bounding_box(sel)
    if bounds is None:
        if label is not None:
            present = [v for v in np.unique(mask.array)[:9].tolist() if v != 0]
            why = f"no voxel has label {label} (non-zero labels present: {present or 'none'})"
        else:
            why = "the mask is empty (no voxel set)"
        return Measurement(status="empty", reason=why, label=label, voxel_volume_mm3=voxel_mm3,
                           flags=("empty-mask",))

    shape = np.array(sel.shape)  # (nk, nj, ni)
    lo, hi = bounds
    crop = np.ascontiguousarray(sel[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
    n = int(np.count_nonzero(crop))
    matrix = mask.direction @ np.diag(mask.spacing)
    offset_ijk = lo[::-1]
    flags: list[str] = []

    touches = bool(np.any(lo == 0) or np.any(hi == shape))
    if touches:
        flags.append("touches-border")

    n_comp = len(component_sizes26(crop))
    if n_comp > 1:
        flags.append("multiple-components")
    if n < FEW_VOXELS:
        flags.append("few-voxels")

    low_ml, high_ml = _band(sel, lo, hi, voxel_mm3)

    mesh_ml = diams = axes = ell_ml = None
    try:
        verts, faces, lattice = _mesh.surface(crop, offset_ijk, matrix, mask.origin)
        mesh_ml = _mesh.signed_volume_mm3(verts, faces, matrix) / 1000.0
        d, ax = _diam.orthogonal_diameters(verts, lattice=lattice)
        diams = d
        axes = tuple(tuple(float(x) for x in row) for row in ax)
        ell_ml = math.pi / 6.0 * d[0] * d[1] * d[2] / 1000.0
    except (RuntimeError, ValueError) as exc:  # pragma: no cover - defensive, marching cubes on a non-empty crop
        log.warning("marching cubes failed on the mask: %s", exc)
        flags.append("mesh-failed")
    inplane, k_rel = _diam.longest_inplane_diameter(crop, matrix)

    stats: dict[str, float | None] = dict.fromkeys(
        ("intensity_mean", "intensity_sd", "intensity_median", "intensity_p5", "intensity_p95"))
    if image is not None:
        vals = image.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][crop].astype(np.float64)
        p5, med, p95 = _percentiles(vals)
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


#: Percentiles reported (5th, median, 95th), as fractions: ``numpy.percentile``'s ``q / 100``.
_QUANTILES = (5 / 100, 50 / 100, 95 / 100)


def _percentiles(vals: np.ndarray) -> tuple[float, float, float]:
    """``np.percentile(vals, [5, 50, 95])`` (method ``"linear"``), the same floats, in one partition.

    numpy's steps for a 1D float64 array, without its generic machinery: the virtual index
    ``v = (n - 1) q``, its floor ``i`` and ``i + 1`` (both ``-1``, the last value, when ``v``
    reaches it), one partition of a copy at the same sorted, unique positions (``0`` and ``-1``
    included), then its interpolation with ``g = v - i``: ``a + (b - a) g``, or
    ``b - (b - a)(1 - g)`` when ``g >= 0.5``, in float64 (Python floats are float64). A NaN among
    the values makes every percentile that NaN, as numpy's.

    Parameters
    ----------
    vals : numpy.ndarray of float64
        1D, at least one value.

    Returns
    -------
    p5, median, p95 : float
    """
    n = vals.size
    last = n - 1
    virtual = [last * q for q in _QUANTILES]
    below = [math.floor(v) for v in virtual]
    prev = [-1 if v >= last else b for v, b in zip(virtual, below)]
    nxt = [-1 if v >= last else b + 1 for v, b in zip(virtual, below)]
    part = vals.copy()
    part.partition(np.array(sorted({0, -1, *prev, *nxt}), dtype=np.intp))
    if math.isnan(part[-1]):  # NaNs partition to the end
        nan = float(part[-1])
        return nan, nan, nan
    out = []
    for v, i, j in zip(virtual, prev, nxt):
        a, c = float(part[i]), float(part[j])
        g = v - i  # numpy's weight: from the index it reads (-1 for the last one), not from the floor
        d = c - a
        out.append(c - d * (1 - g) if g >= 0.5 else a + d * g)
    return out[0], out[1], out[2]


def _bounding_box(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Inclusive-exclusive ``[k, j, i]`` index bounds of the True voxels; None when there is none.

    The slices holding the mask are found first; the row and column bounds are
    then searched in that slab only (a small lesion in a large grid reads the
    grid once).
    """
    if sel.size == 0:
        return None
    ks = np.flatnonzero(sel.reshape(sel.shape[0], -1).any(axis=1))
    if len(ks) == 0:
        return None
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
    voxels outside the image. Both are counted in one pass over the box
    (:func:`._kernels.band_counts`).
    """
    shape = np.array(sel.shape)
    glo = np.maximum(lo - 1, 0)
    ghi = np.minimum(hi + 1, shape)
    box = np.ascontiguousarray(sel[glo[0]:ghi[0], glo[1]:ghi[1], glo[2]:ghi[2]])
    n_eroded, n_dilated = band_counts(box)
    return n_eroded * voxel_mm3 / 1000.0, n_dilated * voxel_mm3 / 1000.0
