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
import math
import numbers
from typing import Callable

import numpy as np

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

    Each given value must have its default's type: ``True``/``False`` for a switch; a finite number
    for a number (a whole number where the default is one); text or a number where the default is
    text (``"auto"`` or 18, ``"otsu"`` or an intensity: the method checks the value); a mapping of
    the ``init`` method's parameters for ``init_params`` (checked against that method).

    Raises
    ------
    InputError
        If a parameter is not one the method knows, or its value is of the wrong type.
    """
    if params is not None and not isinstance(params, dict):
        raise InputError(f"the parameters of method {method.name!r} must be a mapping of name: value, "
                         f"got {params!r}")
    params = dict(params or {})
    known = {**COMMON_DEFAULTS, **method.defaults}
    extra = [k for k in params if k not in known and k != "init_params"]
    if extra:
        raise InputError(f"unknown parameter(s) {', '.join(sorted(extra))} for method {method.name!r}; "
                         f"known: {', '.join(sorted(known))}")
    for name, value in params.items():
        if name == "init_params":
            if "init" not in known:
                raise InputError(f"method {method.name!r} takes no 'init_params' (only a method refining another "
                                 "one, e.g. levelset, does)")
            init = get_method(params.get("init", known["init"]))
            try:
                resolve_params(init, value if value is not None else {})
            except InputError as exc:
                raise InputError(f"init_params of method {method.name!r}: {exc}") from None
            continue
        why = _wrong_type(known[name], value)
        if why:
            raise InputError(f"parameter {name!r} of method {method.name!r} must be {why}, got {value!r}; "
                             f"the default is {known[name]!r}")
    return {**known, **params}


def _wrong_type(default, value) -> str:
    """What ``value`` should be, when its type does not fit its parameter's ``default``; '' when it fits."""
    if isinstance(default, bool):
        return "" if isinstance(value, (bool, np.bool_)) else "true or false"
    if isinstance(default, int):
        whole = type(value) is int or isinstance(value, numbers.Integral)
        return "" if _number(value) and whole else "a whole number"
    if isinstance(default, float):
        return "" if _number(value) else "a finite number"
    if isinstance(default, str):
        return "" if isinstance(value, str) or _number(value) else "text or a number"
    return ""


def _number(v) -> bool:
    """A finite real number that is not a switch (``True``/``False``)."""
    if type(v) is float or type(v) is int:  # the usual values, without the abstract classes' checks
        return math.isfinite(v)
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)
