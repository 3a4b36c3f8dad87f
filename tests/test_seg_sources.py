"""The write stage reads a series' SEG source headers once per run, from the recorded files when known."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

import volumetry.io.seg as seg
from volumetry.io.dicom import load_dicom
from volumetry.pipeline.outputs import seg_sources, write_seg_for

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture()
def counted(monkeypatch):
    calls = {"series_files": 0, "prepare_sources": 0}
    real_files, real_prepare = seg.series_files, seg.prepare_sources

    def files(*a, **kw):
        calls["series_files"] += 1
        return real_files(*a, **kw)

    def prepare(*a, **kw):
        calls["prepare_sources"] += 1
        return real_prepare(*a, **kw)

    monkeypatch.setattr(seg, "series_files", files)
    monkeypatch.setattr(seg, "prepare_sources", prepare)
    return calls


def test_two_lesions_of_a_scan_share_one_read_of_the_headers(counted, tmp_path):
    image = load_dicom(SAMPLE / "PH005" / "baseline" / "dicom")
    source = (str(SAMPLE / "PH005" / "baseline" / "dicom"), image.meta["series_uid"])
    cache: dict = {}
    for n, lo in enumerate((10, 60), start=1):
        arr = np.zeros(image.array.shape, bool)
        arr[4:8, lo:lo + 20, lo:lo + 20] = True
        mask = image.with_array(arr)
        out = write_seg_for(mask, source, tmp_path / f"l{n}.dcm", "PSEUDO", f"L{n}", True, cache=cache)
        np.testing.assert_array_equal(seg.read_seg(out, image=mask).array, arr)
        ds = pydicom.dcmread(out)
        assert (ds.PatientID, ds.AccessionNumber, ds.SegmentSequence[0].SegmentLabel) == ("PSEUDO", "", f"lesion L{n}")
    assert counted == {"series_files": 1, "prepare_sources": 1}


def test_recorded_files_skip_the_series_search_unless_they_moved(counted, tmp_path):
    image = load_dicom(SAMPLE / "PH004" / "course1" / "dicom")
    source = (str(SAMPLE / "PH004" / "course1" / "dicom"), image.meta["series_uid"])
    files = [str(f) for f in image.meta["files"]]
    found = seg_sources(source, files=files)
    assert counted == {"series_files": 0, "prepare_sources": 1}
    assert [Path(n) for n in found.names] == [Path(f) for f in files]
    moved = seg_sources(source, files=[str(tmp_path / Path(f).name) for f in files])  # not there any more
    assert counted == {"series_files": 1, "prepare_sources": 2}
    assert sorted(moved.names) == sorted(found.names)
