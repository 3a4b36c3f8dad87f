"""Audit of the command line's edges: `volumetry segment` never overwrites its input image."""
from __future__ import annotations

import shutil

from test_audit_edges import _run, tiny  # noqa: F401 (tiny is a fixture)


# ------------------------------------------------------------------ volumetry segment
def test_segment_out_on_its_own_input_image_is_refused(tiny, tmp_path, capsys):
    image = tmp_path / "t2.nii.gz"
    shutil.copy(tiny / "S01" / "baseline.nii.gz", image)
    before = image.read_bytes()
    link = tmp_path / "same.nii.gz"
    link.symlink_to(image)
    for out in (image, link):
        rc, err = _run(capsys, "segment", str(image), "--seed", "33", "30", "24", "--out", str(out))
        assert rc == 2 and len(err) == 1, err
        assert err[0] == (f"volumetry segment: error: --out {out} is the input image {image}: writing the mask "
                          "there would destroy it; give another file name")
        assert image.read_bytes() == before
    # another name is written as before
    rc, _ = _run(capsys, "segment", str(image), "--seed", "33", "30", "24", "--out", str(tmp_path / "m.nii.gz"))
    assert rc == 0 and (tmp_path / "m.nii.gz").is_file()
