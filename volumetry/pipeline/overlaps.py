"""Lesions of one visit whose masks share voxels.

A subject's total at a visit is the sum of its lesions' volumes, so two lesion
masks that share voxels would count that tissue twice: two seeds clicked on one
lesion, two foci that region growing joined, or two imported masks drawn over
each other. The pipeline flags such lesion rows ``overlapping-lesions`` and the
visit's total is then ``incomplete`` (see :mod:`volumetry.longitudinal.assess`),
never a sum that double counts.

Masks are compared voxel by voxel when they lie on the same grid (the same
image, as when a visit's lesions are segmented on one series): any shared voxel
counts. Masks of one visit on different grids (lesions read on different
series) are compared in scanner space (:func:`shared_fraction_across_grids`):
they overlap when more than :data:`CROSS_GRID_SHARE` of the smaller one lies in
the other (two voxel grids never tile space alike, so a few voxels along a
contact between two distinct lesions always land in both).
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from ..image import Volume
from ..longitudinal.assess import OVERLAP_FLAG  # noqa: F401 -- the flag set here, read by the assessment
from .tasks import unpack_crop


#: Masks on different grids overlap when more than this share (dimensionless) of the smaller
#: one's volume lies in the other. A 7 mm ball on a 1.5 x 1.5 x 3 mm grid and a 5 mm ball on a
#: 1 mm grid: touching 0.00, overlapping by 1 mm 0.02, by 4 mm 0.26 (true 0.24); one 7 mm ball
#: on both grids 0.91.
CROSS_GRID_SHARE = 0.2


def _same_grid(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in ("shape", "spacing", "origin", "direction"))


def _crop(row: dict) -> np.ndarray:
    """The boolean crop ``[lo:hi]`` of a stored mask row, decoded once (kept in the row: a mask
    is compared with every other lesion of its visit)."""
    if "crop" not in row:
        row["crop"] = unpack_crop(row["data"], row["grid"])
    return row["crop"]


def _geometry(grid: dict) -> Volume:
    """A voxel-less Volume with the grid's geometry (index ↔ LPS maps, voxel volume)."""
    return Volume(np.zeros((1, 1, 1), bool), grid["spacing"], grid["origin"],
                  np.asarray(grid["direction"], float).reshape(3, 3))


def shared_voxels(a: dict, b: dict) -> int:
    """Voxels two stored masks (rows of :meth:`volumetry.store.ResultStore.mask`) share.

    Parameters
    ----------
    a, b : dict
        Mask rows with ``data`` (packed bits) and ``grid`` (shape, spacing, origin,
        direction, bounding box ``lo``/``hi``).

    Returns
    -------
    int
        The number of voxels set in both; 0 when their bounding boxes do not meet.

    Raises
    ------
    ValueError
        If the masks are not on the same grid.
    """
    ga, gb = a["grid"], b["grid"]
    if not _same_grid(ga, gb):
        raise ValueError("the masks are on different grids")
    lo = np.maximum(ga["lo"], gb["lo"])
    hi = np.minimum(ga["hi"], gb["hi"])
    if np.any(hi <= lo):
        return 0
    ca, cb = _crop(a), _crop(b)
    sa = tuple(slice(int(l - o), int(h - o)) for l, h, o in zip(lo, hi, ga["lo"]))
    sb = tuple(slice(int(l - o), int(h - o)) for l, h, o in zip(lo, hi, gb["lo"]))
    return int(np.count_nonzero(ca[sa] & cb[sb]))


def _centres_in(a: dict, b: dict) -> int:
    """How many voxels of mask ``a`` have their centre (LPS mm) inside a voxel of mask ``b``."""
    ga, gb = a["grid"], b["grid"]
    kji = np.argwhere(_crop(a)) + np.asarray(ga["lo"])
    if kji.size == 0:
        return 0
    lps = _geometry(ga).index_to_lps(kji[:, ::-1])
    ijk_b = np.rint(_geometry(gb).lps_to_index(lps)).astype(np.int64)
    kji_b = ijk_b[:, ::-1] - np.asarray(gb["lo"])
    shape = np.asarray(gb["hi"]) - np.asarray(gb["lo"])
    inside = np.all((kji_b >= 0) & (kji_b < shape), axis=1)
    if not inside.any():
        return 0
    cb = _crop(b)
    k, j, i = kji_b[inside].T
    return int(np.count_nonzero(cb[k, j, i]))


def shared_fraction_across_grids(a: dict, b: dict) -> float:
    """Share of the smaller of two masks on different grids that lies in the other.

    Each mask's voxel centres are placed in the other's grid (nearest voxel, in LPS
    scanner space); the shared volume is the smaller of the two ways' counts times the
    voxel volume (mL), divided by the smaller mask's volume.

    Parameters
    ----------
    a, b : dict
        Mask rows with ``data`` (packed bits) and ``grid`` (shape, spacing, origin,
        direction, bounding box ``lo``/``hi``).

    Returns
    -------
    float
        0 to 1 (dimensionless); 0 when either mask is empty.
    """
    ml_a = _geometry(a["grid"]).voxel_volume_mm3 / 1000.0
    ml_b = _geometry(b["grid"]).voxel_volume_mm3 / 1000.0
    vol_a = np.count_nonzero(_crop(a)) * ml_a
    vol_b = np.count_nonzero(_crop(b)) * ml_b
    if vol_a <= 0 or vol_b <= 0:
        return 0.0
    shared = min(_centres_in(a, b) * ml_a, _centres_in(b, a) * ml_b)
    return float(min(1.0, shared / min(vol_a, vol_b)))


def overlapping(store, scans: list[dict]) -> dict[tuple, list[str]]:
    """For each scan whose mask shares voxels with another lesion's mask of the same subject and
    visit (any voxel on the same grid; more than :data:`CROSS_GRID_SHARE` of the smaller
    mask on different grids), the other lesions' ids.

    Parameters
    ----------
    store : volumetry.store.ResultStore
    scans : list of dict
        ``scans`` rows of one or more subjects (``subject_id``, ``visit``, ``lesion_id``,
        ``status``, ``task_key``).

    Returns
    -------
    dict
        ``(subject_id, visit, lesion_id)`` → the sorted ids of the lesions it overlaps;
        scans without overlap are absent.
    """
    by_visit: dict[tuple, list[dict]] = {}
    for s in scans:
        if s["status"] == "ok":
            by_visit.setdefault((s["subject_id"], s["visit"]), []).append(s)
    out: dict[tuple, set] = {}
    for group in by_visit.values():
        if len(group) < 2:
            continue
        masks = {s["task_key"]: store.mask(s["task_key"]) for s in group}
        for s, t in combinations(group, 2):
            a, b = masks[s["task_key"]], masks[t["task_key"]]
            if a is None or b is None:
                continue
            if (shared_voxels(a, b) > 0 if _same_grid(a["grid"], b["grid"])
                    else shared_fraction_across_grids(a, b) > CROSS_GRID_SHARE):
                out.setdefault((s["subject_id"], s["visit"], s["lesion_id"]), set()).add(t["lesion_id"])
                out.setdefault((t["subject_id"], t["visit"], t["lesion_id"]), set()).add(s["lesion_id"])
    return {k: sorted(v) for k, v in out.items()}
