"""Segmentation prompts: seed points and an optional box, always in a stated space.

A :class:`Prompt` describes one lesion: one or more seed points (several seeds
for a multifocal lesion) and optionally a box, all converted to LPS mm once,
when the prompt is built. The space of the input coordinates is always stated
by the caller (``"lps"``, ``"ras"`` or ``"voxel"``), never guessed.

Voxel coordinates are ``(i, j, k)`` indices (column, row, slice: the order of
``Volume.size`` and of ITK indices), not the ``[k, j, i]`` order of the array.

A box is given by two opposite corners in the same space. A box stated in LPS or
RAS is axis-aligned in patient space; a box stated in voxels is axis-aligned in
the voxel grid (hence oblique in patient space for an oblique image). Both are
stored the same way: an LPS corner and three LPS edge vectors (a parallelepiped).
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

from ..errors import PromptError
from ..image import LPS_TO_RAS, Volume

#: The coordinate spaces a prompt can be stated in.
SPACES = ("lps", "ras", "voxel")


@dataclasses.dataclass(frozen=True, eq=False)
class Box:
    """A box (parallelepiped) in LPS mm: ``corner + a*edges[:,0] + b*edges[:,1] + c*edges[:,2]``
    for ``a, b, c`` in ``[0, 1]``.

    Parameters
    ----------
    corner : numpy.ndarray
        LPS position (mm) of one corner, shape (3,).
    edges : numpy.ndarray
        3×3 matrix whose columns are the three edge vectors (LPS mm).
    """

    corner: np.ndarray
    edges: np.ndarray

    def corners(self) -> np.ndarray:
        """The 8 corners in LPS mm, shape (8, 3)."""
        abc = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=float)
        return self.corner + abc @ self.edges.T

    def contains(self, xyz: np.ndarray, margin_mm: float = 0.0) -> np.ndarray:
        """Boolean array: which LPS points ``(..., 3)`` lie inside the box grown by ``margin_mm``."""
        xyz = np.asarray(xyz, dtype=float)
        abc = (xyz - self.corner) @ np.linalg.inv(self.edges).T
        lengths = np.linalg.norm(self.edges, axis=0)
        tol = margin_mm / lengths
        return np.all((abc >= -tol) & (abc <= 1 + tol), axis=-1)

    def transformed(self, point_map) -> "Box":
        """The box carried through an affine point map ``f(points (n,3)) -> (n,3)`` (LPS mm)."""
        pts = np.vstack([self.corner, self.corner + self.edges.T])
        out = np.asarray(point_map(pts), dtype=float)
        return Box(out[0], (out[1:] - out[0]).T)

    def to_json(self) -> dict:
        """JSON-ready description (LPS mm)."""
        c = self.corners()
        return {"space": "lps", "corner": self.corner.tolist(), "edges": self.edges.T.tolist(),
                "min": c.min(axis=0).tolist(), "max": c.max(axis=0).tolist()}


@dataclasses.dataclass(frozen=True, eq=False)
class Prompt:
    """The prompt for one lesion: seeds (LPS mm) and an optional box.

    Build it with :meth:`from_points`, which converts from the stated space and
    checks that every seed lies inside the image.

    Parameters
    ----------
    seeds_lps : numpy.ndarray
        Seed points in LPS mm, shape (n, 3), n >= 1.
    box : Box or None
        Optional box (LPS mm) the lesion lies in.
    lesion_id : str
        Identifier of the lesion (e.g. ``"1"``, ``"left-thigh"``).
    source : dict
        How the prompt was stated (space, original values): provenance only.
    """

    seeds_lps: np.ndarray
    box: Box | None = None
    lesion_id: str = "1"
    source: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        seeds = np.asarray(self.seeds_lps, dtype=float).reshape(-1, 3)
        if len(seeds) == 0:
            raise PromptError(f"lesion {self.lesion_id!r}: a prompt needs at least one seed point")
        if not np.all(np.isfinite(seeds)):
            raise PromptError(f"lesion {self.lesion_id!r}: seed coordinates must be finite numbers, got {seeds.tolist()}")
        seeds.setflags(write=False)
        object.__setattr__(self, "seeds_lps", seeds)
        object.__setattr__(self, "lesion_id", str(self.lesion_id))

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_points(
        cls,
        points: Sequence[Sequence[float]] | np.ndarray,
        space: str,
        image: Volume,
        box: Sequence[Sequence[float]] | np.ndarray | None = None,
        lesion_id: str = "1",
    ) -> "Prompt":
        """Build a prompt from seed points (and a box) stated in ``space``.

        Parameters
        ----------
        points : array-like, shape (n, 3) or (3,)
            Seed points: LPS mm, RAS mm, or voxel indices ``(i, j, k)``.
        space : {"lps", "ras", "voxel"}
            The space of ``points`` and ``box``. Required: never guessed.
        image : Volume
            The image the prompt refers to (needed for voxel coordinates, and to
            check that the seeds lie inside it).
        box : array-like, shape (2, 3) or (6,), optional
            Two opposite corners ``(x0, y0, z0), (x1, y1, z1)`` in ``space``.
        lesion_id : str
            Identifier of the lesion.

        Returns
        -------
        Prompt

        Raises
        ------
        PromptError
            If the space is unknown, a point does not have 3 coordinates, a seed
            lies outside the image (the message gives the seed, the image extent
            in the same space and the fix), or the box is degenerate or does not
            contain the seeds.
        """
        space = _check_space(space)
        pts = _as_points(points, what="seed", lesion_id=lesion_id)
        seeds_lps = to_lps(pts, space, image)
        box_lps = None
        if box is not None:
            box_lps = box_from_corners(box, space, image, lesion_id=lesion_id)
        prompt = cls(seeds_lps, box_lps, lesion_id,
                     {"space": space, "points": pts.tolist(),
                      "box": None if box is None else np.asarray(box, float).reshape(2, 3).tolist()})
        prompt.check_inside(image, space=space)
        return prompt

    # ---------------------------------------------------------------- checks
    def check_inside(self, image: Volume, space: str = "lps") -> None:
        """Raise :class:`PromptError` if a seed is outside ``image`` or outside the box.

        Parameters
        ----------
        image : Volume
            The image to be segmented.
        space : {"lps", "ras", "voxel"}
            Space in which the message states the seed and the image extent.

        Raises
        ------
        PromptError
            A seed lies outside the image grid, or outside the prompt's box.
        """
        space = _check_space(space)
        for n, xyz in enumerate(self.seeds_lps):
            ijk = image.lps_to_index(xyz)
            if not image.contains_index(ijk):
                lo, hi = image_extent(image, space)
                name = image.meta.get("source")
                raise PromptError(
                    f"lesion {self.lesion_id!r}: seed {n + 1} at {_fmt(from_lps(xyz, space, image))} ({space}"
                    f"{' i, j, k' if space == 'voxel' else ' mm'}) lies outside the image"
                    f"{f' {name}' if name else ''}, whose extent in "
                    f"{space.upper()} is {_fmt(lo)} to {_fmt(hi)}; check that the seed was given in the stated "
                    f"space (--seed-space lps|ras|voxel; voxel = i, j, k indices) and for this image/series"
                )
            if self.box is not None and not bool(self.box.contains(xyz, margin_mm=1e-6)):
                c = self.box.corners()
                raise PromptError(
                    f"lesion {self.lesion_id!r}: seed {n + 1} at {_fmt(xyz)} (LPS mm) lies outside its box "
                    f"{_fmt(c.min(axis=0))} to {_fmt(c.max(axis=0))} (LPS mm); give a box that contains every seed "
                    "(two opposite corners in the same space as the seeds)"
                )

    def seeds_index(self, image: Volume) -> np.ndarray:
        """Seeds as rounded voxel indices ``(i, j, k)`` of ``image``, shape (n, 3), int."""
        ijk = np.rint(image.lps_to_index(self.seeds_lps)).astype(int)
        return np.clip(ijk, 0, np.asarray(image.size) - 1)

    def transformed(self, point_map, lesion_id: str | None = None) -> "Prompt":
        """The prompt carried through a point map ``f(points (n,3) LPS) -> (n,3) LPS``."""
        seeds = np.asarray(point_map(self.seeds_lps), dtype=float)
        box = None if self.box is None else self.box.transformed(point_map)
        return Prompt(seeds, box, lesion_id or self.lesion_id, {**self.source, "propagated": True})

    def to_json(self) -> dict:
        """JSON-ready description (LPS mm)."""
        return {"lesion_id": self.lesion_id, "seeds_lps": self.seeds_lps.tolist(),
                "box": None if self.box is None else self.box.to_json(), "source": self.source}


# ------------------------------------------------------------------- helpers
def _check_space(space: str) -> str:
    s = str(space).lower() if space is not None else ""
    if s not in SPACES:
        raise PromptError(
            f"unknown coordinate space {space!r} for a prompt; state it as one of {', '.join(SPACES)} "
            "(lps/ras: patient mm, voxel: i, j, k indices)"
        )
    return s


def _as_points(points, what: str, lesion_id: str) -> np.ndarray:
    try:
        arr = np.asarray(points, dtype=float)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"lesion {lesion_id!r}: {what} coordinates must be numbers, got {points!r}") from exc
    if arr.ndim == 1 and arr.size == 3:
        arr = arr.reshape(1, 3)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise PromptError(f"lesion {lesion_id!r}: each {what} needs exactly 3 coordinates (x y z), "
                          f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise PromptError(f"lesion {lesion_id!r}: {what} coordinates must be finite, got {arr.tolist()}")
    return arr


def to_lps(points: np.ndarray, space: str, image: Volume) -> np.ndarray:
    """Convert points ``(n, 3)`` from ``space`` to LPS mm.

    RAS differs from LPS by the sign of x and y (:data:`volumetry.image.LPS_TO_RAS`);
    voxel ``(i, j, k)`` indices go through the image's affine.
    """
    space = _check_space(space)
    pts = np.asarray(points, dtype=float)
    if space == "lps":
        return pts.copy()
    if space == "ras":
        return pts @ LPS_TO_RAS.T
    return image.index_to_lps(pts)


def from_lps(points: np.ndarray, space: str, image: Volume) -> np.ndarray:
    """Convert LPS points (mm) to ``space`` (inverse of :func:`to_lps`)."""
    space = _check_space(space)
    pts = np.asarray(points, dtype=float)
    if space == "lps":
        return pts.copy()
    if space == "ras":
        return pts @ LPS_TO_RAS.T
    return image.lps_to_index(pts)


def box_from_corners(corners, space: str, image: Volume, lesion_id: str = "1") -> Box:
    """Build a :class:`Box` (LPS) from two opposite corners stated in ``space``.

    Raises
    ------
    PromptError
        If the corners are not 2 × 3 finite numbers or the box is flat along an axis.
    """
    space = _check_space(space)
    c = _as_points(np.asarray(corners, dtype=float).reshape(-1, 3) if np.size(corners) == 6 else corners,
                   what="box corner", lesion_id=lesion_id)
    if c.shape != (2, 3):
        raise PromptError(f"lesion {lesion_id!r}: a box is two opposite corners X0 Y0 Z0 X1 Y1 Z1, got {c.tolist()}")
    lo, hi = np.minimum(c[0], c[1]), np.maximum(c[0], c[1])
    if np.any(hi - lo <= 0):
        raise PromptError(f"lesion {lesion_id!r}: the box {c.tolist()} ({space}) is flat along an axis; "
                          "give two opposite corners that differ in x, y and z")
    if space == "voxel":
        # voxel-space corners are voxel centres: the box covers those voxels entirely
        lo, hi = lo - 0.5, hi + 0.5
    corner = to_lps(lo[None], space, image)[0]
    edges = np.stack([to_lps((lo + np.eye(3)[a] * (hi - lo))[None], space, image)[0] - corner for a in range(3)],
                     axis=1)
    return Box(corner, edges)


def image_extent(image: Volume, space: str) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box of the image (voxel centres) in ``space``: (min, max)."""
    space = _check_space(space)
    if space == "voxel":
        return np.zeros(3), np.asarray(image.size, float) - 1
    n = np.asarray(image.size) - 1
    ijk = np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])], dtype=float)
    pts = from_lps(image.index_to_lps(ijk), space, image)
    return pts.min(axis=0), pts.max(axis=0)


def merge(prompts: Iterable[Prompt]) -> dict[str, Prompt]:
    """Index prompts by lesion id.

    Raises
    ------
    PromptError
        If two prompts share a lesion id.
    """
    out: dict[str, Prompt] = {}
    for p in prompts:
        if p.lesion_id in out:
            raise PromptError(f"two prompts share the lesion id {p.lesion_id!r}; give each lesion its own id")
        out[p.lesion_id] = p
    return out


def _fmt(v) -> str:
    return "(" + ", ".join(f"{float(x):.1f}" for x in np.ravel(v)) + ")"
