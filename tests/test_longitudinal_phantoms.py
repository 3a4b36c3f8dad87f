"""End to end: masks with analytic truth -> measure -> assess -> the category each trajectory was built for."""
import math

import numpy as np
import pandas as pd
import pytest

from volumetry.image import Volume
from volumetry.longitudinal import assess
from volumetry.measure import measure
from volumetry.tables import measurement_rows

BASE = pd.Timestamp("2025-03-03")
GRID = dict(shape=(40, 64, 64), spacing=(0.7, 0.7, 1.5))


def ellipsoid_mask(volume_ml, direction):
    """Ellipsoid (axes 1.4 : 1 : 0.8) of ``volume_ml`` centred in an oblique 64x64x40 grid."""
    nk, nj, ni = GRID["shape"]
    m = direction @ np.diag(GRID["spacing"])
    origin = -m @ ((np.array([ni, nj, nk]) - 1) / 2)
    k, j, i = np.indices(GRID["shape"])
    xyz = np.stack([i, j, k], -1).reshape(-1, 3) @ m.T + origin
    r = (3 * volume_ml * 1000 / (4 * math.pi * 1.4 * 0.8)) ** (1 / 3) if volume_ml > 0 else 0.0
    a = np.array([1.4, 1.0, 0.8]) * r
    inside = ((xyz / np.maximum(a, 1e-9)) ** 2).sum(1) <= 1 if volume_ml > 0 else np.zeros(len(xyz), bool)
    return Volume(inside.reshape(GRID["shape"]), GRID["spacing"], tuple(origin), direction)


# truth volumes (mL) at baseline and courses 1-4, and the category each is built to have
TRAJECTORIES = {
    "responder": ([8.0, 7.0, 4.4, 3.2, 2.8], "vascular-anomaly", ["SD", "PR", "PR", "PR"], "PR"),
    "complete": ([6.0, 3.0, 0.0, 0.0, 0.0], "vascular-anomaly", ["PR", "CR", "CR", "CR"], "CR"),
    "stable": ([7.0, 7.6, 6.6, 7.3, 6.9], "vascular-anomaly", ["SD", "SD", "SD", "SD"], "SD"),
    "progressor": ([5.0, 5.6, 6.5, 7.5, 8.5], "vascular-anomaly", ["SD", "PD", "PD", "PD"], "SD"),
    "recist-pr": ([9.0, 5.0, 2.5, 2.2, 2.0], "recist-volumetric", ["SD", "PR", "PR", "PR"], "PR"),
    "recist-regrowth": ([9.0, 4.0, 3.7, 7.0, 7.5], "recist-volumetric", ["SD", "SD", "PD", "PD"], "SD"),
}


@pytest.mark.parametrize("name", sorted(TRAJECTORIES))
def test_measured_trajectory_has_its_built_category(name):
    truth, criteria, expected, best = TRAJECTORIES[name]
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]) @ np.array(
        [[1, 0, 0], [0, math.cos(0.3), -math.sin(0.3)], [0, math.sin(0.3), math.cos(0.3)]])
    rows = []
    for k, v in enumerate(truth):
        m = measure(ellipsoid_mask(v, direction))
        if v > 0:
            assert m.volume_ml == pytest.approx(v, rel=0.03)
        else:
            assert m.status == "empty" and m.volume_ml is None
        rows += measurement_rows(m, subject_id=name, lesion_id="L1", visit="baseline" if k == 0 else f"C{k}",
                                 scan_date=BASE + pd.Timedelta(days=84 * k + (3 if k % 2 else -2)),
                                 methods=("voxel", "mesh"))
    out = assess(pd.DataFrame(rows), criteria=criteria)
    for method in ("voxel", "mesh"):
        t = out[(out["lesion_id"] == "total") & (out["method"] == method)].reset_index(drop=True)
        assert [None if pd.isna(c) else int(c) for c in t["course"]] == [0, 1, 2, 3, 4]
        assert t["response"].tolist()[1:] == expected, method
        assert t.loc[0, "best_response"] == best
        truth_pct = [(v - truth[0]) * 100 / truth[0] for v in truth[1:]]
        np.testing.assert_allclose(t["percent_change"][1:].astype(float), truth_pct, atol=3.0)
