"""The SEG writer's shortcuts give the answers of what they stand for.

Spatial look-ups: :func:`volumetry.io.seg_fast._volume_spacing` stands for
``highdicom.spatial.get_volume_positions`` (the slice spacing of the SEG's PixelMeasuresSequence and
its "3D" DimensionOrganizationType) and :func:`volumetry.io.seg_fast._normal_vector` for
``get_normal_vector``: each is compared, value for value (``==`` on the floats, the same None), with
highdicom's function on the planes of axial, oblique and flipped stacks in several orders, and on
the positions highdicom refuses (duplicates, uneven or in-plane steps, a non-finite value).

Source names: a light-read source file given as a string is named by the string itself only where
``str(Path(name))`` is that string (:func:`volumetry.io.seg._is_path_name`), checked on odd names,
and the names and errors of :func:`volumetry.io.seg.prepare_sources` are the former ones.

Encoding and matching: :func:`volumetry.io.seg_fast._el` (element heads made once per tag and VR)
and :func:`volumetry.io.seg_fast._nearest_sources` (the sources nearest each plane from one
comparison) against the former code, on random and edge-case inputs.

The sample trial's SEGs (identified and pseudonymised), byte for byte with the frozen writer, and the
odd sources and bad inputs are in ``tests/test_seg_write_cache_equality.py`` and
``tests/test_seg_speed_equality.py``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from highdicom.spatial import VOLUME_INDEX_CONVENTION, get_normal_vector, get_volume_positions
from pydicom.multival import MultiValue
from pydicom.valuerep import DSfloat

from volumetry.errors import DicomReadError, InputError
from volumetry.io import seg, seg_fast
from volumetry.io.seg import _is_path_name
from volumetry.io.seg_fast import _normal_vector, _volume_spacing


def _orientation(row, col) -> np.ndarray:
    row = np.asarray(row, float) / np.linalg.norm(row)
    col = np.asarray(col, float)
    col = col - (col @ row) * row
    return np.r_[row, col / np.linalg.norm(col)]


_ORIENTATIONS = [
    [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
    [-1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    list(_orientation([0.98, 0.17, 0.05], [-0.17, 0.97, 0.2])),
    list(_orientation([0.7, -0.7, 0.1], [0.1, 0.3, -0.95])),
]


def _stack(ori, n, step, origin=(-120.25, 80.5, 33.0), gaps=()) -> np.ndarray:
    normal = np.cross(ori[:3], ori[3:])
    ks = [k for k in range(n + len(gaps)) if k not in gaps][:n]
    return np.array([np.asarray(origin) + k * step * normal for k in ks])


def _cases():
    rng = np.random.default_rng(7)
    for o, ori in enumerate(_ORIENTATIONS):
        for n, step in ((2, 3.0), (3, -1.5), (20, 3.3), (61, 0.9)):
            p = _stack(ori, n, step)
            yield f"o{o}-n{n}-sorted", p, ori
            yield f"o{o}-n{n}-reversed", p[::-1].copy(), ori
            yield f"o{o}-n{n}-shuffled", p[rng.permutation(n)], ori
            yield f"o{o}-n{n}-decimal", np.round(p, 4), ori
        p = _stack(ori, 12, 2.0)
        yield f"o{o}-gap", _stack(ori, 12, 2.0, gaps=(5,)), ori
        yield f"o{o}-duplicate", np.vstack([p, p[3:4]]), ori
        yield f"o{o}-all-duplicates", np.repeat(p[:1], 4, axis=0), ori
        yield f"o{o}-uneven", p + np.outer(np.r_[0.0, 0.1, np.zeros(10)], np.cross(ori[:3], ori[3:])), ori
        yield f"o{o}-sheared", p + np.outer(np.arange(12) * 0.05, ori[:3]), ori
        yield f"o{o}-in-plane", p[:1] + np.outer(np.arange(6), ori[:3]), ori
        yield f"o{o}-jitter", p + rng.normal(0, 1e-4, p.shape), ori
    zero = _stack(_ORIENTATIONS[0], 6, 1.0, origin=(0.0, 0.0, -3.0))
    neg = zero.copy()
    neg[:, :2] = -0.0
    yield "signed-zeros", neg, _ORIENTATIONS[0]
    yield "signed-zero-duplicate", np.vstack([zero, neg[:1]]), _ORIENTATIONS[0]
    bad = _stack(_ORIENTATIONS[0], 5, 2.0)
    bad[2, 1] = np.nan
    yield "nan", bad, _ORIENTATIONS[0]
    yield "one", _stack(_ORIENTATIONS[3], 1, 2.0), _ORIENTATIONS[3]
    yield "ds-orientation", _stack(_ORIENTATIONS[3], 9, 1.25), \
        MultiValue(DSfloat, [DSfloat(f"{v:.8f}", auto_format=False) for v in _ORIENTATIONS[3]])


@pytest.mark.parametrize("sort", [False, True], ids=["as-given", "sorted"])
def test_volume_spacing_is_highdicoms(sort):
    n_volumes = n_refused = 0
    for name, positions, ori in _cases():
        expected, _ = get_volume_positions(image_positions=positions, image_orientation=ori, sort=sort)
        got = _volume_spacing(positions, ori, sort=sort)
        assert (got is None) == (expected is None), name
        if expected is not None:
            assert type(got) is type(expected) and got == expected, name
            n_volumes += 1
        else:
            n_refused += 1
    assert n_volumes > 40 and n_refused > 20


def test_normal_vector_is_highdicoms():
    for ori in _ORIENTATIONS + [[DSfloat(v, auto_format=True) for v in _ORIENTATIONS[4]]]:
        expected = get_normal_vector(ori, index_convention=VOLUME_INDEX_CONVENTION)
        got = _normal_vector(ori)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
        assert not got.flags.writeable


_NAMES = ["/a/b/c.dcm", "a/b", "a", "./a", "a/./b", "a//b", "//a/b", "///a", "a/", "a/.", ".", "..", "../a",
          "a/../b", "/", "", "a/.b", ".a/b", "a/b.", "a/..", "./", "a\\b", "a b/c d.dcm", "é/ß.dcm", "a/\0/b",
          "/work/main/sample_data/PH005/course3/dicom/IM0027.dcm", "~/x", "a/b/", "a/b//", ".//a", "a/.../b"]


def test_path_names_taken_as_they_are_are_their_paths_names():
    taken = 0
    for name in _NAMES + [n + "/x.dcm" for n in _NAMES] + ["x/" + n for n in _NAMES]:
        if _is_path_name(name):
            assert str(Path(name)) == name, name
            taken += 1
    assert taken > 30
    assert not _is_path_name("a//b") and not _is_path_name("./a") and not _is_path_name("a/")


def test_light_sources_named_as_before(tmp_path):
    """Names of sources given as strings (the pipeline's) and as odd strings and Paths: the names
    and errors of the former reader (each file's str(Path(...)))."""
    from test_seg import DIRECTION, write_mr_series

    files = write_mr_series(tmp_path / "s", np.zeros((4, 6, 5), np.uint16), (0.5, 0.5, 2.0), (0.0, 0.0, 0.0),
                            DIRECTION)
    odd = [str(files[0]), str(files[1]).replace("/s/", "/s//"), "./" + os.path.relpath(files[2]), files[3]]
    for given in ([str(f) for f in files], odd):
        sources = seg.prepare_sources(given)
        assert sources.names == [str(Path(f)) for f in given]
        assert [ds.filename for ds in sources.datasets[1:]] == sources.names[1:]
    missing = [str(files[0]), str(tmp_path / "s" / "gone.dcm")]
    with pytest.raises(InputError, match=f"^{missing[1]}: source DICOM file not found"):
        seg.prepare_sources(missing)
    (tmp_path / "s" / "bad.dcm").write_bytes(b"not dicom" * 40)
    with pytest.raises(DicomReadError, match=f"^{tmp_path}/s/bad.dcm: not a readable DICOM file"):
        seg.prepare_sources([str(files[0]), str(tmp_path / "s" / "bad.dcm")])


def test_element_bytes_are_the_former_ones():
    """:func:`volumetry.io.seg_fast._el` (tag, VR and reserved bytes made once per tag and VR) writes
    the element the former code wrote: every VR, short and long lengths, empty values, many tags."""
    import struct

    long_vrs = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"}

    def former(tag, vr, value):
        head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii")
        if vr in long_vrs:
            return head + b"\0\0" + struct.pack("<I", len(value)) + value
        return head + struct.pack("<H", len(value)) + value

    assert seg_fast._LONG_VRS == long_vrs
    rng = np.random.default_rng(5)
    vrs = sorted(long_vrs | {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH",
                             "SL", "SS", "ST", "TM", "UI", "UL", "US"})
    for _ in range(3000):
        tag = int(rng.choice([0x00081150, 0x00200032, 0x7FE00010, 0xFFFEE000, 0, 0xFFFFFFFF,
                              int(rng.integers(0, 2 ** 32))]))
        vr = vrs[int(rng.integers(len(vrs)))]
        value = rng.integers(0, 256, int(rng.choice([0, 2, 26, 70000 if vr in long_vrs else 65534]))).astype(
            np.uint8).tobytes()
        assert seg_fast._el(tag, vr, value) == former(tag, vr, value)


def test_nearest_sources_are_the_former_row_by_row_ones():
    """:func:`volumetry.io.seg_fast._nearest_sources` (one comparison of the whole matrix) gives the
    former ``list(np.nonzero(distances[i] == min_d[i])[0])`` of each row: the same numpy integers,
    ties (several sources at one distance), one plane, one source, NaN rows and the sample's layout."""
    rng = np.random.default_rng(11)
    cases = [np.abs(rng.normal(size=(20, 20))), np.zeros((3, 4)), np.ones((1, 1)), np.abs(rng.normal(size=(1, 9))),
             np.abs(rng.normal(size=(7, 1))), np.round(np.abs(rng.normal(size=(30, 12))), 1)]
    ties = np.abs(rng.normal(size=(10, 10)))
    ties[:, 3] = ties[:, 7] = ties.min(axis=1)
    nan = np.abs(rng.normal(size=(5, 6)))
    nan[2, :] = np.nan
    nan[4, 1] = np.nan
    cases += [ties, nan]
    for _ in range(40):
        n, m = int(rng.integers(1, 25)), int(rng.integers(1, 25))
        cases.append(rng.integers(0, 3, size=(n, m)).astype(float))
    for distances in cases:
        min_d = distances.min(axis=1)
        former = [list(np.nonzero(distances[i] == min_d[i])[0]) for i in range(len(distances))]
        got = seg_fast._nearest_sources(distances, min_d)
        assert got == former
        assert [[type(v) for v in row] for row in got] == [[type(v) for v in row] for row in former]
