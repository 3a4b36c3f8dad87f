"""Lesions of one visit whose masks share voxels.

A subject's total at a visit is the sum of its lesions' volumes, so two lesion
masks that share voxels would count that tissue twice: two seeds clicked on one
lesion, two foci that region growing joined, or two imported masks drawn over
each other. The pipeline flags such lesion rows ``overlapping-lesions`` and the
visit's total is then ``incomplete`` (see :mod:`volumetry.longitudinal.assess`),
never a sum that double counts.

Masks are compared voxel by voxel when they lie on the same grid (the same
image, as when a visit's lesions are segmented on one series); masks of one
visit on different grids (lesions read on different series) are not compared.
"""
from __future__ import annotations

import zlib
from itertools import combinations

import numpy as np

from ..longitudinal.assess import OVERLAP_FLAG  # noqa: F401 -- the flag set here, read by the assessment


def _same_grid(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in ("shape", "spacing", "origin", "direction"))


def _crop(data: bytes, grid: dict) -> np.ndarray:
    """The boolean crop ``[lo:hi]`` of a packed mask (:func:`volumetry.pipeline.tasks.pack_mask`)."""
    shape = tuple(h - l for l, h in zip(grid["lo"], grid["hi"]))
    bits = np.unpackbits(np.frombuffer(zlib.decompress(data), dtype=np.uint8), count=int(np.prod(shape)))
    return bits.reshape(shape).astype(bool)


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
    ca, cb = _crop(a["data"], ga), _crop(b["data"], gb)
    sa = tuple(slice(int(l - o), int(h - o)) for l, h, o in zip(lo, hi, ga["lo"]))
    sb = tuple(slice(int(l - o), int(h - o)) for l, h, o in zip(lo, hi, gb["lo"]))
    return int(np.count_nonzero(ca[sa] & cb[sb]))


def overlapping(store, scans: list[dict]) -> dict[tuple, list[str]]:
    """For each scan whose mask shares voxels with another lesion's mask of the same subject and
    visit (same grid), the other lesions' ids.

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
            if a is None or b is None or not _same_grid(a["grid"], b["grid"]):
                continue
            if shared_voxels(a, b) > 0:
                out.setdefault((s["subject_id"], s["visit"], s["lesion_id"]), set()).add(t["lesion_id"])
                out.setdefault((t["subject_id"], t["visit"], t["lesion_id"]), set()).add(s["lesion_id"])
    return {k: sorted(v) for k, v in out.items()}
