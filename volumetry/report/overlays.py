"""Overlay montages: the mask's contour drawn on the lesion's slices.

A radiologist signs off a volume only after seeing the mask on the image. One
montage per scan shows a row of tiles, each an in-plane crop around the lesion
at one *anatomical level*. The levels are chosen once, on the baseline mask
(:func:`plan_views`: points in LPS mm spread over the lesion's extent), and
every visit of the subject is drawn at the same LPS points mapped into its own
grid, so the tiles of all visits show the same level of the body (as far as the
scanner's patient coordinates agree between sessions).

Pixels map exactly onto voxels: each voxel becomes a block of
``scale_j × scale_i`` pixels (nearest neighbour, no smoothing), tiles show the
slice as acquired (rows = DICOM rows ``j`` top to bottom, columns = DICOM
columns ``i`` left to right), and the contour is drawn in the pure colour
:data:`CONTOUR_RGB` on the outermost pixels of the mask's voxels, so every
contour pixel lies inside a boundary voxel of the mask. Grey values are always
R = G = B, so no image pixel can be mistaken for the contour.
"""
from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..image import Volume

log = logging.getLogger(__name__)

#: Colour of the contour (pure red, never produced by the grey image).
CONTOUR_RGB = (255, 0, 0)
#: Colour of a tile whose level lies outside the scan.
OUTSIDE_RGB = (48, 0, 48)
#: Colour of the gaps between tiles and of padding.
BACKGROUND_RGB = (0, 0, 0)
#: Pixels between tiles.
TILE_GAP_PX = 4
#: Target tile size (pixels) along the larger in-plane side.
TILE_PX = 192
#: Field of view = lesion extent × this factor + :data:`FIELD_MARGIN_MM`, at least :data:`MIN_FIELD_MM`.
FIELD_FACTOR = 1.5
FIELD_MARGIN_MM = 20.0
MIN_FIELD_MM = 40.0
#: Percentiles (%) of the shown voxels mapped to black and white.
WINDOW_PERCENTILES = (0.5, 99.5)


@dataclass(frozen=True)
class ViewPlan:
    """Where to look: anatomical levels (LPS mm) and the in-plane field of view (mm).

    Made on the baseline with :func:`plan_views` and reused for every visit.
    JSON-serialisable with :meth:`to_dict` / :meth:`from_dict`.
    """

    points_lps: tuple[tuple[float, float, float], ...]
    field_mm: float

    def to_dict(self) -> dict:
        return {"points_lps": [list(p) for p in self.points_lps], "field_mm": self.field_mm}

    @classmethod
    def from_dict(cls, d: dict) -> "ViewPlan":
        return cls(tuple(tuple(float(v) for v in p) for p in d["points_lps"]), float(d["field_mm"]))

    def mapped(self, matrix, translation_mm, centre_mm) -> "ViewPlan":
        """The plan carried into a follow-up by a registration transform.

        Parameters
        ----------
        matrix : array-like, 3×3
            Linear part of the transform.
        translation_mm : array-like, 3
            Translation (mm).
        centre_mm : array-like, 3
            Centre of rotation (LPS mm).

        Returns
        -------
        ViewPlan
            Points ``M (p - c) + c + t`` (ITK's convention for a transform that
            maps baseline LPS points to follow-up LPS points, as
            :func:`volumetry.segment.propagate` records it); same field of view.

        Raises
        ------
        InputError
            If the parameters are not finite or have the wrong shape.
        """
        try:
            m = np.asarray(matrix, float).reshape(3, 3)
            t = np.asarray(translation_mm, float).reshape(3)
            c = np.asarray(centre_mm, float).reshape(-1)[:3]
        except (TypeError, ValueError) as exc:
            raise InputError(f"registration transform cannot be read ({exc})") from exc
        if c.shape != (3,) or not (np.all(np.isfinite(m)) and np.all(np.isfinite(t)) and np.all(np.isfinite(c))):
            raise InputError("registration transform must be a finite 3x3 matrix, translation and centre (mm)")
        pts = (np.asarray(self.points_lps, float) - c) @ m.T + c + t
        return ViewPlan(tuple(tuple(float(v) for v in p) for p in pts), self.field_mm)


@dataclass(frozen=True)
class Tile:
    """Placement of one tile in a montage, for captions and for tests.

    A montage pixel ``(x, y)`` with ``x0 <= x < x0 + n_i * scale_i`` and
    ``y0 <= y < y0 + n_j * scale_j`` shows voxel
    ``(i0 + (x - x0) // scale_i, j0 + (y - y0) // scale_j, k)``.
    """

    point_lps: tuple[float, float, float]
    k: int | None  #: slice index in this image, None when the level is outside the scan
    x0: int
    y0: int
    i0: int
    j0: int
    n_i: int
    n_j: int
    scale_i: int
    scale_j: int
    caption: str = ""

    def voxel_at(self, x: int, y: int) -> tuple[int, int, int] | None:
        """Voxel ``(i, j, k)`` shown by montage pixel ``(x, y)``, or None outside this tile."""
        if self.k is None:
            return None
        dx, dy = x - self.x0, y - self.y0
        if not (0 <= dx < self.n_i * self.scale_i and 0 <= dy < self.n_j * self.scale_j):
            return None
        return (self.i0 + dx // self.scale_i, self.j0 + dy // self.scale_j, self.k)


@dataclass(frozen=True)
class Montage:
    """An RGB montage (``rgb[y, x]``, uint8), its PNG bytes and its tiles."""

    rgb: np.ndarray
    tiles: list[Tile] = field(default_factory=list)
    #: fraction of the mask's voxels outside the zoomed tiles' slab and field (0..1);
    #: when > 0 the last tile is a whole slice showing where that part of the mask is
    outside_fraction: float = 0.0

    @property
    def png(self) -> bytes:
        return encode_png(self.rgb)

    def tiles_json(self) -> str:
        return json.dumps([asdict(t) for t in self.tiles])


def encode_png(rgb: np.ndarray) -> bytes:
    """Lossless PNG of an ``(h, w, 3)`` uint8 array."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def plan_views(mask: Volume, n_levels: int = 5, *, image: Volume | None = None) -> ViewPlan:
    """Choose anatomical levels over the lesion's extent on the (baseline) mask.

    Parameters
    ----------
    mask : Volume
        Boolean mask (baseline visit).
    n_levels : int
        Number of tiles; fewer when the lesion spans fewer slices.
    image : Volume, optional
        Used only when the mask is empty: the levels are then the central
        slice of the image (or of the mask's grid).

    Returns
    -------
    ViewPlan
        LPS points (mm) on the slices ``k`` spread evenly from the first to the
        last slice holding the lesion, each at the lesion's in-plane centroid,
        and a field of view (mm) that holds the lesion with a margin.

    Raises
    ------
    InputError
        If ``n_levels`` < 1.
    """
    if n_levels < 1:
        raise InputError(f"n_levels must be >= 1, got {n_levels}")
    arr = np.asarray(mask.array).astype(bool)
    if not arr.any():
        ref = image if image is not None else mask
        centre = (np.asarray(ref.size, float) - 1) / 2
        return ViewPlan((tuple(float(v) for v in ref.index_to_lps(centre)),),
                        max(MIN_FIELD_MM, float(np.max(np.multiply(ref.size, ref.spacing)))))
    kk, jj, ii = np.nonzero(arr)
    ci, cj = float(ii.mean()), float(jj.mean())
    ks = np.unique(np.round(np.linspace(kk.min(), kk.max(), min(n_levels, kk.max() - kk.min() + 1))).astype(int))
    points = tuple(tuple(float(v) for v in mask.index_to_lps(np.array([ci, cj, k], float))) for k in ks)
    extent_mm = max((ii.max() - ii.min() + 1) * mask.spacing[0], (jj.max() - jj.min() + 1) * mask.spacing[1])
    field_mm = max(MIN_FIELD_MM, extent_mm * FIELD_FACTOR + FIELD_MARGIN_MM)
    return ViewPlan(points, float(field_mm))


def _window(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, WINDOW_PERCENTILES)
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def _contour(mask2d: np.ndarray, scale_j: int, scale_i: int, width: int) -> np.ndarray:
    """Pixel mask of the outermost ``width`` pixels of the upsampled mask (inside it)."""
    from scipy import ndimage

    up = np.repeat(np.repeat(mask2d, scale_j, axis=0), scale_i, axis=1)
    if not up.any():
        return up
    inner = ndimage.binary_erosion(up, structure=ndimage.generate_binary_structure(2, 1),
                                   iterations=width, border_value=1)
    return up & ~inner


def render_montage(
    image: Volume,
    mask: Volume | None,
    plan: ViewPlan | None = None,
    *,
    n_levels: int = 5,
    tile_px: int = TILE_PX,
) -> Montage:
    """Draw the mask's contour on the image at the plan's anatomical levels.

    Parameters
    ----------
    image : Volume
        The scan (any numeric dtype).
    mask : Volume or None
        Boolean mask on the image's grid; None draws the image alone (a
        failed segmentation still gets its picture).
    plan : ViewPlan, optional
        Levels chosen on the baseline (:func:`plan_views`); default: chosen on
        this mask.
    n_levels : int
        Number of levels when ``plan`` is None.
    tile_px : int
        Approximate tile size in pixels along its larger side.

    Returns
    -------
    Montage

    Raises
    ------
    GeometryMismatchError
        If the mask is not on the image's grid.
    """
    if mask is not None:
        image.require_same_grid(mask, "mask")
        marr = np.asarray(mask.array).astype(bool)
    else:
        marr = None
    if plan is None:
        plan = plan_views(mask if mask is not None else image.with_array(np.zeros(image.array.shape, bool)),
                          n_levels, image=image)
    si, sj, _ = image.spacing
    half_i = max(1, int(math.ceil(plan.field_mm / 2 / si)))
    half_j = max(1, int(math.ceil(plan.field_mm / 2 / sj)))
    pix_mm = plan.field_mm / max(tile_px, 16)
    scale_i = max(1, int(round(si / pix_mm)))
    scale_j = max(1, int(round(sj / pix_mm)))
    width = 1 if min(scale_i, scale_j) < 4 else 2
    ni_img, nj_img, nk_img = image.size
    tile_w, tile_h = (2 * half_i + 1) * scale_i, (2 * half_j + 1) * scale_j

    crops = []
    for p in plan.points_lps:
        ijk = image.lps_to_index(np.asarray(p, float))
        k = int(np.round(ijk[2]))
        if not (0 <= k < nk_img):
            crops.append((tuple(p), None, 0, 0, 0, 0))
            continue
        ci, cj = int(np.round(ijk[0])), int(np.round(ijk[1]))
        i0, i1 = max(0, ci - half_i), min(ni_img, ci + half_i + 1)
        j0, j1 = max(0, cj - half_j), min(nj_img, cj + half_j + 1)
        if i1 <= i0 or j1 <= j0:  # centre far outside the slice in-plane
            crops.append((tuple(p), None, 0, 0, 0, 0))
            continue
        crops.append((tuple(p), k, i0, i1, j0, j1))
    shown = [np.asarray(image.array[k, j0:j1, i0:i1], float) for _, k, i0, i1, j0, j1 in crops if k is not None]
    lo, hi = _window(np.concatenate([s.ravel() for s in shown])) if shown else (0.0, 1.0)

    outside, k_over = _outside_views(marr, crops)
    n = len(crops)
    over_w = over_h = 0
    if k_over is not None:
        oi, oj = scale_i, scale_j
        # a whole slice at the zoomed tiles' scale, halved while larger than about 2 tiles
        while (nj_img * oj > 2 * max(tile_h, 256) or ni_img * oi > 2 * max(tile_w, 256)) and max(oi, oj) > 1:
            oi, oj = max(1, oi // 2), max(1, oj // 2)
        over_h, over_w = nj_img * oj, ni_img * oi
    width_px = n * tile_w + (n - 1) * TILE_GAP_PX + (over_w + TILE_GAP_PX if k_over is not None else 0)
    rgb = np.empty((max(tile_h, over_h), width_px, 3), np.uint8)
    rgb[:] = BACKGROUND_RGB
    tiles: list[Tile] = []
    for t, (p, k, i0, i1, j0, j1) in enumerate(crops):
        x_tile = t * (tile_w + TILE_GAP_PX)
        if k is None:
            rgb[:, x_tile:x_tile + tile_w] = OUTSIDE_RGB
            tiles.append(Tile(p, None, x_tile, 0, 0, 0, 0, 0, scale_i, scale_j, "level outside this scan"))
            continue
        ijk = image.lps_to_index(np.asarray(p, float))
        # place the crop so that the level's centre sits at the tile centre
        x0 = x_tile + (i0 - (int(np.round(ijk[0])) - half_i)) * scale_i
        y0 = (j0 - (int(np.round(ijk[1])) - half_j)) * scale_j
        sl = np.asarray(image.array[k, j0:j1, i0:i1], float)
        grey = np.clip((sl - lo) / (hi - lo) * 255.0, 0, 255)
        grey = np.nan_to_num(grey, nan=0.0).round().astype(np.uint8)
        up = np.repeat(np.repeat(grey, scale_j, axis=0), scale_i, axis=1)
        h, w = up.shape
        block = np.repeat(up[:, :, None], 3, axis=2)
        if marr is not None:
            block[_contour(marr[k, j0:j1, i0:i1], scale_j, scale_i, width)] = CONTOUR_RGB
        rgb[y0:y0 + h, x0:x0 + w] = block
        pos = image.index_to_lps(np.array([0, 0, k], float)) @ image.direction[:, 2]
        tiles.append(Tile(p, k, x0, y0, i0, j0, i1 - i0, j1 - j0, scale_i, scale_j,
                          f"slice {k + 1}/{nk_img} ({pos:.1f} mm)"))
    if k_over is not None:
        x0 = n * (tile_w + TILE_GAP_PX)
        sl = np.asarray(image.array[k_over], float)
        grey = np.nan_to_num(np.clip((sl - lo) / (hi - lo) * 255.0, 0, 255), nan=0.0).round().astype(np.uint8)
        up = np.repeat(np.repeat(grey, oj, axis=0), oi, axis=1)
        block = np.repeat(up[:, :, None], 3, axis=2)
        block[_contour(marr[k_over], oj, oi, 1)] = CONTOUR_RGB
        rgb[:over_h, x0:x0 + over_w] = block
        centre = image.index_to_lps(np.array([(ni_img - 1) / 2, (nj_img - 1) / 2, k_over], float))
        tiles.append(Tile(tuple(float(v) for v in centre), k_over, x0, 0, 0, 0, ni_img, nj_img, oi, oj,
                          f"whole slice {k_over + 1}/{nk_img}: where most of the mask outside the zoomed "
                          "views lies"))
    return Montage(rgb, tiles, outside)


def _outside_views(marr: np.ndarray | None, crops: list) -> tuple[float, int | None]:
    """Fraction of mask voxels outside the zoomed views, and the slice holding most of them."""
    if marr is None:
        return 0.0, None
    total = int(np.count_nonzero(marr))
    shown = [c for c in crops if c[1] is not None]
    if total == 0:
        return 0.0, None
    inside = np.zeros(marr.shape, bool)
    if shown:
        ks = [c[1] for c in shown]
        for _, _, i0, i1, j0, j1 in shown:
            inside[min(ks):max(ks) + 1, j0:j1, i0:i1] = True
    out = marr & ~inside
    n_out = int(np.count_nonzero(out))
    if n_out == 0:
        return 0.0, None
    return n_out / total, int(np.argmax(out.sum(axis=(1, 2))))


def render_scan_overlay(image: Volume, mask: Volume | None, plan: ViewPlan | None = None, **kwargs) -> bytes:
    """PNG bytes of :func:`render_montage` (for workers that hold the image already)."""
    return render_montage(image, mask, plan, **kwargs).png


def save_montage(montage: Montage, png_path: str | Path) -> Path:
    """Write the montage's PNG and, beside it, ``<name>.json`` with its tiles (captions).

    Returns
    -------
    Path
        The PNG path.
    """
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(montage.png)
    png_path.with_suffix(".json").write_text(montage.tiles_json(), encoding="utf-8")
    return png_path


def load_tiles(png_path: str | Path) -> list[Tile]:
    """Tiles saved by :func:`save_montage` beside ``png_path`` (empty list when absent)."""
    side = Path(png_path).with_suffix(".json")
    if not side.is_file():
        return []
    try:
        items = json.loads(side.read_text(encoding="utf-8"))
        return [Tile(**{**d, "point_lps": tuple(d["point_lps"])}) for d in items]
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("%s: unreadable tile sidecar (%s); captions left out", side, exc)
        return []

