"""pack_mask's bounding box from axis profiles and plain's fast leaves give exactly what the
former code gave (kept here as references)."""
from __future__ import annotations

import collections
import dataclasses
import math
import zlib
from pathlib import Path

import numpy as np
import pytest

from volumetry.image import Volume
from volumetry.measure import measure
from volumetry.pipeline.tasks import pack_mask, plain, unpack_mask


def _reference_pack(mask: Volume):
    arr = np.asarray(mask.array).astype(bool)
    n = int(arr.sum())
    if n:
        idx = np.nonzero(arr)
        lo = [int(i.min()) for i in idx]
        hi = [int(i.max()) + 1 for i in idx]
    else:
        lo, hi = [0, 0, 0], [0, 0, 0]
    crop = arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    data = zlib.compress(np.packbits(crop.ravel()).tobytes(), 6)
    grid = {"shape": list(arr.shape), "lo": lo, "hi": hi, "spacing": list(mask.spacing),
            "origin": list(mask.origin), "direction": np.asarray(mask.direction).ravel().tolist()}
    return data, grid, n


def _masks():
    rng = np.random.default_rng(7)
    shape = (9, 17, 23)
    yield np.zeros(shape, bool)  # empty
    one = np.zeros(shape, bool)
    one[0, 16, 22] = True  # a corner voxel
    yield one
    yield np.ones(shape, bool)  # the whole grid
    for p in (0.001, 0.02, 0.3):
        yield rng.random(shape) < p
    blob = np.zeros(shape, np.uint8)
    blob[2:7, 3:12, 5:20] = 1  # 0/1 integers, not bool
    yield blob


@pytest.mark.parametrize("n", range(7))
def test_pack_mask_equals_former_code(n):
    arr = list(_masks())[n]
    vol = Volume(arr, (0.7, 0.9, 3.0), (-10.0, 5.0, 2.5), np.eye(3)[:, [1, 0, 2]], {})
    got, ref = pack_mask(vol), _reference_pack(vol)
    assert got == ref
    np.testing.assert_array_equal(unpack_mask(got[0], got[1]).array, arr.astype(bool))


@dataclasses.dataclass
class _Thing:
    name: str
    values: tuple
    nan: float


_Pair = collections.namedtuple("_Pair", "a b")


def _reference_plain(obj):
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return _reference_plain(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _reference_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not isinstance(getattr(obj, f.name), Volume)}
    if isinstance(obj, dict):
        return {str(k): _reference_plain(v) for k, v in obj.items() if not isinstance(v, Volume)}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_reference_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def test_plain_equals_former_code_on_a_measurement():
    arr = np.zeros((12, 20, 20), bool)
    arr[3:9, 5:15, 4:16] = True
    image = Volume(arr.astype(np.float32) * 100, (0.8, 0.8, 2.0), (0.0, 0.0, 0.0), np.eye(3), {})
    m = measure(image.with_array(arr), image)
    value = {"m": m, "t": _Thing("x", (1, 2.5, np.float64(math.nan), np.int16(3), True, None), math.nan),
             "p": Path("/a/b"), 3: [np.arange(3), {"nested": (math.inf, -0.0, "s")}], "v": image,
             # containers that are not exactly dict/list/tuple take the general path
             "od": collections.OrderedDict(a=np.float32(0.5), v=image), "nt": _Pair(np.int64(2), [math.nan]),
             "s": {3, 1}, "f": frozenset({"z"}), "nested": [[{"k": (np.bool_(True), m)}]]}
    got, ref = plain(value), _reference_plain(value)
    assert repr(got) == repr(ref)  # same values and the same types (1 vs 1.0 vs True)
    # a Python NaN becomes None; a numpy NaN stays NaN (as before)
    assert got["t"]["nan"] is None and math.isnan(got["t"]["values"][2])
