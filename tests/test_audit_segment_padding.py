"""Audit of segmentation: a lesion cut by zero-filled padding (a brain mask, a resampled field of view)
is flagged ``touches-padding`` like one cut by the image's edge. It was returned whole-looking, status
ok, no flag: 0.56 mL for a 0.88 mL lesion half inside the padding."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.image import Volume
from volumetry.segment import Prompt, segment

from test_segment_helpers import dice, ellipsoid_phantom


@pytest.mark.parametrize("method", ["region_growing", "threshold", "levelset"])
@pytest.mark.parametrize("spacing, shape", [((1.0, 1.0, 1.0), (30, 40, 40)), ((0.5, 0.5, 5.0), (8, 60, 60))])
@pytest.mark.parametrize("axis", ["i", "k"])
def test_a_lesion_cut_by_zero_padding_is_flagged(method, spacing, shape, axis):
    image, truth, true_ml, centres = ellipsoid_phantom(spacing=spacing, shape=shape)
    ijk = image.lps_to_index(centres[0])
    pad = np.zeros(shape, bool)
    if axis == "i":
        pad[:, :, :int(ijk[0])] = True
    else:
        pad[:int(round(ijk[2]))] = True
    a = image.array.copy()
    a[pad] = 0.0
    cut = Volume(a, image.spacing, image.origin, image.direction)
    res = segment(cut, Prompt.from_points(ijk + ([3, 0, 0] if axis == "i" else [0, 0, 1]), "voxel", cut),
                  method=method)
    assert (truth & pad).sum() > 0.1 * truth.sum()  # the padding cuts off a real part of the lesion
    assert res.ok
    assert dice(res.mask.array, truth & ~pad) > (0.8 if method == "levelset" else 0.85)
    assert res.qc["touches_padding"] == 1 and "touches-padding" in res.flags


@pytest.mark.parametrize("method", ["region_growing", "threshold", "levelset"])
def test_a_lesion_away_from_padding_is_not_flagged(method):
    image, truth, true_ml, centres = ellipsoid_phantom(spacing=(1.0, 1.0, 1.0), shape=(30, 40, 40))
    a = image.array.copy()
    a[:, :, :8] = 0.0  # padding 5 voxels or more from the lesion
    padded = Volume(a, image.spacing, image.origin, image.direction)
    res = segment(padded, Prompt.from_points(centres, "lps", padded), method=method)
    plain = segment(image, Prompt.from_points(centres, "lps", image), method=method)
    assert res.ok and res.qc["touches_padding"] == 0 and "touches-padding" not in res.flags
    assert plain.qc["touches_padding"] == 0 and plain.flags == []
