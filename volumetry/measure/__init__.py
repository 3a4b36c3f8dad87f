"""Volumes and diameters of a lesion mask (pure computation, no file access).

Public API
----------
:func:`measure` (mask, image=None, *, label=None) -> :class:`Measurement`
    voxel volume, closed-mesh volume, ±1-voxel band, three orthogonal diameters,
    ellipsoid volume π/6·L·W·H, longest in-plane diameter, components, border
    contact and intensity statistics.

Modules: :mod:`.core` (the measurement), :mod:`.mesh` (marching cubes in LPS mm),
:mod:`.diameters` (definitions of the diameters).
"""
from .core import FEW_VOXELS, FLAGS, Measurement, measure

__all__ = ["FEW_VOXELS", "FLAGS", "Measurement", "measure"]
