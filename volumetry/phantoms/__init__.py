"""Digital phantoms of T2-bright lesions with known truth.

* :func:`make_lesion_phantom` — one phantom from a :class:`PhantomSpec`
  (shape, volume, plane, pixels, slice thickness and gap, SNR, bias field).
* :func:`phantom_suite` — a fixed list of ≥ 40 varied specs (benchmarks,
  regression checks).
* :mod:`volumetry.phantoms.longitudinal` — subjects followed over treatment
  courses; :mod:`volumetry.phantoms.trial` — the synthetic sample trial.

See ``docs/phantoms.md`` for the model (shapes, intensities, noise, partial
volume) and the truth files.
"""
from __future__ import annotations

from .geometry import Grid, make_grid, plane_direction
from .lesion import SHAPES, Phantom, PhantomSpec, make_lesion_phantom, phantom_suite
from .shapes import TrueVolume

__all__ = [
    "SHAPES", "Grid", "Phantom", "PhantomSpec", "TrueVolume",
    "make_grid", "make_lesion_phantom", "phantom_suite", "plane_direction",
]
