"""Audit of segmentation: NaN or infinite voxels near the lesion are an InputError naming them,
for every method (were: region_growing/levelset "failed: no voxel above the threshold nan",
threshold a bare ValueError from Otsu's histogram)."""
from __future__ import annotations

import numpy as np
import pytest

from volumetry.errors import InputError
from volumetry.image import Volume
from volumetry.segment import Prompt, segment

from test_segment_helpers import ellipsoid_phantom


@pytest.fixture(scope="module")
def phantom():
    return ellipsoid_phantom(spacing=(1.0, 1.0, 1.0), shape=(30, 40, 40))


@pytest.mark.parametrize("method", ["region_growing", "threshold", "levelset"])
@pytest.mark.parametrize("value, where", [(np.nan, (15, 20, 25)), (np.inf, (15, 20, 35)), (-np.inf, (15, 20, 21))])
def test_non_finite_voxel_in_the_crop_is_an_error_naming_it(phantom, method, value, where):
    image, *_, centres = phantom
    a = image.array.copy()
    a[where] = value
    bad = Volume(a, image.spacing, image.origin, image.direction, {"source": "t2.nii.gz"})
    k, j, i = where
    with pytest.raises(InputError, match=rf"lesion '1': the image t2\.nii\.gz has 1 non-finite voxel \(NaN or "
                                         rf"infinite\) near the prompt, the first at voxel \(i, j, k\) = "
                                         rf"\({i}, {j}, {k}\); .*reconvert"):
        segment(bad, Prompt.from_points(centres, "lps", bad), method=method)


def test_non_finite_voxels_away_from_the_crop_change_nothing(phantom):
    image, truth, true_ml, centres = phantom
    a = image.array.copy()
    a[0, 0, 0] = np.nan
    far = Volume(a, image.spacing, image.origin, image.direction)
    p = {"search_radius_mm": 5.0}
    ref = segment(image, Prompt.from_points(centres, "lps", image), params=p)
    res = segment(far, Prompt.from_points(centres, "lps", far), params=p)
    assert res.ok and np.array_equal(res.mask.array, ref.mask.array) and res.volume_ml == ref.volume_ml


def test_command_line_nan_in_the_image_is_exit_2_in_one_line_and_no_mask(tmp_path, capsys):
    from volumetry.cli import main
    from volumetry.io.nifti import write_nifti

    image, *_, centres = ellipsoid_phantom(spacing=(1.0, 1.0, 1.0), shape=(30, 40, 40))
    a = image.array.copy()
    a[15, 20, 25] = np.nan
    path = write_nifti(Volume(a, image.spacing, image.origin, image.direction), tmp_path / "t2.nii.gz")
    out = tmp_path / "m.nii.gz"
    rc = main(["segment", str(path), "--seed", *map(str, centres[0]), "--seed-space", "lps", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and not out.exists()
    # the reader refuses such a file already (naming it); segment's own check covers images built in memory
    assert "t2.nii.gz" in err[0] and "NaN or infinite" in err[0], err
