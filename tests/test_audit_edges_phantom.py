"""Audit of the command line's edges: `volumetry phantom` refuses numbers that are not finite
(and a negative seed, no focus) as usage errors, instead of a traceback (exit 1) or a phantom
whose image is NaN cast to integers (exit 0)."""
from __future__ import annotations

import pytest

from volumetry.cli import main


@pytest.mark.parametrize("option, values, says", [
    ("--volume", ["inf"], "argument --volume: 'inf' is not a finite number"),
    ("--bias", ["nan"], "argument --bias: 'nan' is not a finite number"),
    ("--snr", ["inf"], "argument --snr: 'inf' is not a finite number"),
    ("--pixel", ["nan", "1"], "argument --pixel: 'nan' is not a finite number"),
    ("--tilt", ["nan", "0"], "argument --tilt: 'nan' is not a finite number"),
    ("--thickness", ["inf"], "argument --thickness: 'inf' is not a finite number"),
    ("--gap", ["nan"], "argument --gap: 'nan' is not a finite number"),
    ("--seed", ["-1"], "argument --seed: must be 0 or more"),
    ("--foci", ["0"], "argument --foci: must be 1 or more"),
])
def test_phantom_numbers_that_cannot_make_a_phantom_are_usage_errors(tmp_path, capsys, option, values, says):
    out = tmp_path / "ph"
    rc = main(["-q", "phantom", "--out", str(out), option, *values])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == [f"volumetry phantom: error: {says}; see 'volumetry phantom --help'"]  # one line
    assert not out.exists()
