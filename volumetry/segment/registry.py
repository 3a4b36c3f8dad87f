"""Segmentation methods by name, with their documented parameters and defaults.

=================  ==============================================================
name               method
=================  ==============================================================
``region_growing``  seeded region growing at the half-way threshold learnt around
                    the seed (the default: best for T2-bright lesions)
``threshold``       Otsu (or a given) threshold inside the box, connected to seeds
``levelset``        morphological Chan–Vese refinement of ``region_growing`` or
                    ``threshold``
=================  ==============================================================

``"default"`` is an alias of :data:`DEFAULT_METHOD`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from ..errors import InputError

#: The method used when none is named.
DEFAULT_METHOD = "region_growing"

#: Parameters handled by :func:`volumetry.segment.segment` for every method.
COMMON_DEFAULTS = {
    "search_radius_mm": 30.0,      # first search region around the seeds (no box), mm
    "max_search_radius_mm": 160.0,  # the search region grows up to this while the mask touches it, mm
    "min_expected_fraction": 0.6,  # propagated prompts: contrast reached vs the baseline lesion mapped here
}


@dataclasses.dataclass(frozen=True)
class Method:
    """A segmentation method: its name, function ``(roi, params) -> MethodOutput`` and defaults."""

    name: str
    func: Callable
    defaults: dict
    summary: str


def _methods() -> dict[str, Method]:
    from . import levelset, region_growing, threshold

    return {
        "region_growing": Method("region_growing", region_growing.region_growing, region_growing.DEFAULTS,
                                 "seeded region growing at the half-way threshold learnt around the seed"),
        "threshold": Method("threshold", threshold.threshold, threshold.DEFAULTS,
                            "Otsu (or given) threshold inside the box, connected to the seeds"),
        "levelset": Method("levelset", levelset.levelset, levelset.DEFAULTS,
                           "morphological Chan-Vese refinement of region_growing or threshold"),
    }


def method_names() -> list[str]:
    """Names accepted by :func:`get_method` (plus ``"default"``)."""
    return list(_methods())


def get_method(name: str) -> Method:
    """Look up a method by name.

    Raises
    ------
    InputError
        If the name is unknown (the message lists the methods).
    """
    if name in (None, "", "default"):
        name = DEFAULT_METHOD
    methods = _methods()
    if name not in methods:
        raise InputError(f"unknown segmentation method {name!r}; choose one of: default, {', '.join(methods)}")
    return methods[name]


def resolve_params(method: Method, params: dict | None) -> dict:
    """Merge ``params`` over the method's and the common defaults.

    Raises
    ------
    InputError
        If a parameter is not one the method knows.
    """
    params = dict(params or {})
    known = {**COMMON_DEFAULTS, **method.defaults}
    extra = [k for k in params if k not in known and k != "init_params"]
    if extra:
        raise InputError(f"unknown parameter(s) {', '.join(sorted(extra))} for method {method.name!r}; "
                         f"known: {', '.join(sorted(known))}")
    return {**known, **params}
