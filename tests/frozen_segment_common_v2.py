"""FROZEN COPY (test oracle): median and noise_sigma of volumetry/segment/common.py as of commit 8737b9c, before the speed-ups of
noise_sigma, grow_kernel, lesion_field and the fill/shell kernels; verbatim except for this docstring
and the imports made absolute (frozen module names). Do not edit: tests/test_segment_speed_v2.py asserts
that the current code gives exactly what this gives.
"""
from __future__ import annotations

import numpy as np

from frozen_segment_kernels_v2 import median_of_partition
from volumetry.segment.common import padding_mask


def median(x: np.ndarray):
    """``np.median(x)`` (same value and type), faster on a few thousand values.

    numpy selects the two middle values with a two-index partition, several
    times slower than a one-index partition: here the upper middle value is
    selected and the lower one is the largest value below it; the median is
    then the mean of the same two values, as ``np.median`` computes it. For
    float32 and float64 values a compiled kernel reads the partition
    (:func:`volumetry.segment.kernels.median_of_partition`).

    Parameters
    ----------
    x : numpy.ndarray
        Values (any shape; the median of all of them). Integer arrays, fewer
        than 3 values and arrays holding NaN go to ``np.median`` itself.

    Returns
    -------
    numpy scalar
        Exactly ``np.median(x)``, in the same dtype (e.g. ``float32`` for a float32 crop).
    """
    x = np.ravel(x)
    n = x.size
    if n < 3 or not np.issubdtype(x.dtype, np.floating):
        return np.median(x)
    h = n // 2
    part = np.partition(x, h)
    if x.dtype == np.float32 or x.dtype == np.float64:
        value = median_of_partition(part, h)  # compiled; None: a NaN, or a median of 0 (its sign), below
        if value is not None:
            return value
    if np.isnan(part[h]) or np.isnan(part[h + 1:]).any():  # NaN: numpy's own result
        return np.median(x)
    if n % 2:
        return np.mean(part[h:h + 1])
    mid = np.empty(2, dtype=part.dtype)
    mid[0] = part[:h].max()
    mid[1] = part[h]
    return np.mean(mid)


def noise_sigma(a: np.ndarray, pad: np.ndarray | None = None) -> float:
    """Robust noise standard deviation from first differences along the finest
    axes (median absolute difference / (0.6745·√2)); edges barely move it.

    ``pad`` is ``padding_mask(a)`` when the caller has it already (it is computed otherwise).
    The differences are ``np.diff``'s (the same subtraction of the same slices), and the
    estimates' median is ``np.median``'s (one value, or the mean of two: ``(x + y) / 2``)."""
    ests = []
    if pad is None:
        pad = padding_mask(a)
    any_pad = bool(pad.any())
    diff = np.not_equal if a.dtype == np.bool_ else np.subtract  # what np.diff applies
    for ax in (1, 2):
        if a.shape[ax] > 1:
            upper = (slice(None),) * ax + (slice(1, None),)
            lower = (slice(None),) * ax + (slice(None, -1),)
            d = diff(a[upper], a[lower])
            if any_pad:
                d = d[~(pad[upper] | pad[lower])]
            if d.size < 10:
                continue
            ests.append(median(np.abs(d - median(d))) / _MAD_TO_SD)
    if len(ests) == 2:
        s = float((ests[0] + ests[1]) / 2)
    elif ests:
        s = float(ests[0])
    else:
        s = float(np.std(a))
    return max(s, 1e-6 * (float(np.ptp(a)) or 1.0))


#: Median absolute deviation of a normal difference of two samples, per noise SD (0.6745·√2).
_MAD_TO_SD = 0.6745 * np.sqrt(2)
