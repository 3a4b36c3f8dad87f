"""Lesion segmentation from a prompt (seeds, box), and follow-up propagation.

Public API
----------
* :class:`Prompt` (``Prompt.from_points(points, space, image, box=None, lesion_id="1")``)
* :func:`segment` ``(image, prompt, *, method="default", params=None) -> SegmentationResult``
* :func:`segment_lesions` (several lesions, by id)
* :func:`propagate` ``(baseline, followup, prompt) -> (Prompt, RegistrationResult)``
* :func:`method_names`, :data:`DEFAULT_METHOD`
"""
from __future__ import annotations

from .api import SegmentationResult, segment, segment_lesions
from .prompts import Box, Prompt
from .registry import DEFAULT_METHOD, method_names
from .propagate import RegistrationResult, propagate  # noqa: E402  (the function shadows the module name)


__all__ = ["Box", "DEFAULT_METHOD", "Prompt", "RegistrationResult", "SegmentationResult", "method_names",
           "propagate", "segment", "segment_lesions"]
