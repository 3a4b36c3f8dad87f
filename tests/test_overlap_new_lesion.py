"""A new lesion (not at baseline) whose mask shares voxels with a baseline lesion's: the total's
reason names both and says which is new (it named only the baseline lesion, "their sum would
count them twice", though a new lesion is never in the sum)."""
from __future__ import annotations

import pandas as pd

from volumetry.longitudinal import assess
from volumetry.longitudinal.assess import OVERLAP_FLAG


def test_new_lesion_overlapping_a_baseline_lesion_is_named_in_the_total_reason():
    rows = [{"subject_id": "S", "lesion_id": lid, "visit": v, "method": "voxel", "course": c, "scan_date": d,
             "volume_ml": vol, "status": "ok", "flags": f}
            for lid, v, c, d, vol, f in [("A", "baseline", 0, "2024-01-01", 10.0, ""),
                                         ("B", "baseline", 0, "2024-01-01", 2.0, ""),
                                         ("A", "w12", 1, "2024-03-25", 5.0, OVERLAP_FLAG),
                                         ("B", "w12", 1, "2024-03-25", 2.0, ""),
                                         ("N", "w12", 1, "2024-03-25", 3.0, OVERLAP_FLAG)]]
    t = assess(pd.DataFrame(rows)).set_index(["lesion_id", "visit"])
    total = t.loc[("total", "w12")]
    assert total["status"] == "incomplete" and pd.isna(total["volume_ml"])
    reason = total["reason"]
    assert "lesions A, N share voxels" in reason
    assert "N is not at baseline" in reason and "count them twice" not in reason
    # two baseline lesions over each other: the sum would count them twice, as before
    rows[3]["flags"] = OVERLAP_FLAG
    rows[4]["flags"] = ""
    t = assess(pd.DataFrame(rows)).set_index(["lesion_id", "visit"])
    assert "lesions A, B share voxels" in t.loc[("total", "w12"), "reason"]
    assert "count them twice" in t.loc[("total", "w12"), "reason"]
