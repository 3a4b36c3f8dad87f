"""Scalar helpers shared by the longitudinal modules (plain Python values, no DataFrame)."""
from __future__ import annotations

from typing import Any

import pandas as pd


def missing(v: Any) -> bool:
    """True for None, NaN, ``pd.NA`` and ``NaT``: ``pandas.isna`` of one scalar, fast for common types."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float):
        return v != v
    if isinstance(v, (str, int)) or type(v) is pd.Timestamp:  # a Timestamp is never missing (NaT is not one)
        return False
    return bool(pd.isna(v))
