"""Every output of a run as text, for tests that search the outputs for what must not be there
(real dates, real UIDs, identifiers)."""
from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pandas as pd
import pydicom


def output_texts(out: Path):
    """``(label, text)`` of every output under ``out``: each path (relative to ``out``), each file's
    bytes (latin-1), and decoded forms — gunzipped ``.gz`` files, the Parquet table, the database
    dump and every element of a DICOM file (nested sequences included, bulk data left out)."""
    for f in sorted(Path(out).rglob("*")):
        yield f"name {f}", str(f.relative_to(out))
        if not f.is_file():
            continue
        data = f.read_bytes()
        yield str(f), data.decode("latin-1")
        if f.name.endswith(".gz"):
            try:
                yield f"{f} (gunzipped)", gzip.decompress(data).decode("latin-1")
            except (OSError, EOFError):
                pass
        if f.suffix == ".parquet":
            yield f"{f} (decoded)", pd.read_parquet(f).to_csv()
        elif f.suffix == ".sqlite":
            con = sqlite3.connect(f)
            try:
                yield f"{f} (dump)", "\n".join(con.iterdump())
            finally:
                con.close()
        elif f.suffix == ".dcm":
            ds = pydicom.dcmread(f)
            yield f"{f} (elements)", "\n".join(f"{e.tag} {e.value!r}" for e in ds.iterall()
                                               if e.VR not in ("OB", "OW", "UN"))
