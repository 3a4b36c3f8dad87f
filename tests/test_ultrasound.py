"""Ultrasound CSV -> ellipsoid-us rows."""
import math

import pandas as pd
import pytest

from volumetry.errors import ManifestError
from volumetry.longitudinal import assess
from volumetry.ultrasound import read_ultrasound_csv

GOOD = """subject_id,lesion_id,visit,scan_date,d1_mm,d2_mm,d3_mm,course,operator
S1,L1,baseline,2025-01-06,30,20,10,,A
S1,L1,C1,2025-04-01,24,20,10,,A
S1,L1,C2,2025-06-23,,,,,B

S1,L1,C3,2025-09-15,0,0,0,,B
S2,L1,screen,2025-02-01,10.5,8,6.25,0,A
"""


def write(tmp_path, text, name="us.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_read_ultrasound_csv_volumes_and_statuses(tmp_path):
    df = read_ultrasound_csv(write(tmp_path, GOOD))
    assert list(df.columns[:6]) == ["subject_id", "lesion_id", "visit", "scan_date", "course", "method"]
    assert len(df) == 5 and (df["method"] == "ellipsoid-us").all()
    assert df.loc[0, "volume_ml"] == pytest.approx(math.pi / 6 * 30 * 20 * 10 / 1000, rel=1e-12)
    assert df.loc[4, "volume_ml"] == pytest.approx(math.pi / 6 * 10.5 * 8 * 6.25 / 1000, rel=1e-12)
    assert df.loc[4, "course"] == 0 and df["course"].isna().sum() == 4
    assert df.loc[2, "status"] == "failed" and math.isnan(df.loc[2, "volume_ml"])
    assert df.loc[3, "status"] == "empty" and math.isnan(df.loc[3, "volume_ml"])
    assert df["scan_date"].dtype == "datetime64[ns]"
    out = assess(df)
    l1 = out[(out["subject_id"] == "S1") & (out["lesion_id"] == "L1")].reset_index(drop=True)
    assert l1["percent_change"].iloc[1] == -20.0 and l1["response"].iloc[1] == "PR"
    assert l1["response"].tolist()[2:] == ["NE", "CR"]
    assert (out["method"] == "ellipsoid-us").all()


@pytest.mark.parametrize("line, col, text, match", [
    (3, "d2_mm", "S1,L1,C1,2025-04-01,24,abc,10", "line 3, column d2_mm: 'abc' is not a number"),
    (3, "d3_mm", "S1,L1,C1,2025-04-01,24,20,-1", "line 3, column d3_mm: '-1' must be a finite diameter"),
    (3, "d1_mm", "S1,L1,C1,2025-04-01,,20,10", "line 3, column d1_mm: empty while the other"),
    (3, "scan_date", "S1,L1,C1,2025-13-45,24,20,10", "line 3, column scan_date: '2025-13-45' is not a date"),
    (3, "visit", "S1,L1,baseline,2025-01-06,24,20,10", "line 3, column visit: .*already given on line 2"),
    (3, "subject_id", ",L1,C1,2025-04-01,24,20,10", "line 3, column subject_id: empty"),
])
def test_bad_rows_name_file_line_and_column(tmp_path, line, col, text, match):
    body = "subject_id,lesion_id,visit,scan_date,d1_mm,d2_mm,d3_mm\nS1,L1,baseline,2025-01-06,30,20,10\n" + text + "\n"
    p = write(tmp_path, body)
    with pytest.raises(ManifestError, match=match) as exc:
        read_ultrasound_csv(p)
    assert str(p) in str(exc.value)


def test_missing_column_and_missing_file(tmp_path):
    p = write(tmp_path, "subject_id,lesion_id,visit,d1_mm,d2_mm,d3_mm\nS1,L1,b,1,2,3\n")
    with pytest.raises(ManifestError, match="missing column.*scan_date"):
        read_ultrasound_csv(p)
    with pytest.raises(ManifestError, match="no such file"):
        read_ultrasound_csv(tmp_path / "nope.csv")
    p = write(tmp_path, "subject_id,lesion_id,visit,scan_date,d1_mm,d2_mm,d3_mm,course\nS1,L1,b,2025-01-01,1,2,3,x\n")
    with pytest.raises(ManifestError, match="line 2, column course"):
        read_ultrasound_csv(p)
