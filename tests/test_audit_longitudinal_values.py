"""Audit of the engine's input values: a volume that is not a finite number (inf, from a
hand-made table or an ultrasound import done outside read_ultrasound_csv) is an InputError
naming the row, not a +inf % change reported as PD (follow-up) or a MeasurementError
traceback (baseline)."""
import pandas as pd
import pytest

from volumetry.errors import InputError
from volumetry.longitudinal import assess

BASE = pd.Timestamp("2025-01-06")


def _rows(baseline_ml, c1_ml):
    return pd.DataFrame([
        dict(subject_id="S1", lesion_id="L1", visit="baseline", scan_date=BASE, method="voxel", volume_ml=baseline_ml),
        dict(subject_id="S1", lesion_id="L1", visit="C1", scan_date=BASE + pd.Timedelta(days=84), method="voxel",
             volume_ml=c1_ml),
    ])


@pytest.mark.parametrize("baseline_ml, c1_ml, where", [
    (10.0, float("inf"), "visit C1"),       # was: percent_change inf, response PD, status ok
    (float("inf"), 5.0, "visit baseline"),  # was: MeasurementError from percent_change
    (10.0, "inf", "visit C1"),              # text from a CSV: pandas reads 'inf' as a number
])
def test_non_finite_volume_is_an_input_error(baseline_ml, c1_ml, where):
    with pytest.raises(InputError, match=f"subject S1 lesion L1 {where}: volume inf mL is not a finite number"):
        assess(_rows(baseline_ml, c1_ml))


def test_finite_volumes_unchanged():
    out = assess(_rows(10.0, 13.0))
    c1 = out[(out["lesion_id"] == "L1") & (out["visit"] == "C1")].iloc[0]
    assert c1["percent_change"] == 30.0 and c1["response"] == "PD"
    # a failed row's NaN volume is still allowed (NE, never 0)
    df = _rows(10.0, float("nan"))
    df["status"] = ["ok", "failed"]
    c1 = assess(df).query("lesion_id == 'L1' and visit == 'C1'").iloc[0]
    assert pd.isna(c1["volume_ml"]) and pd.isna(c1["percent_change"]) and c1["response"] == "NE"
