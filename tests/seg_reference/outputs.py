"""``seg_sources``, ``_emptied_identifying`` and ``write_seg_for`` of ``volumetry/pipeline/outputs.py``
at commit e94f556 (before the SEG speed work), writing through the reference writer of this package."""
from __future__ import annotations

import os
from pathlib import Path

from volumetry.pipeline.outputs import SEG_IDENTIFYING, SEG_SUBJECT_IDS


def seg_sources(source: tuple, files=None, cache: dict | None = None):
    """The headers of the source series of a SEG (:class:`volumetry.io.seg.SegSources`), read once per run.

    Parameters
    ----------
    source : tuple
        ``(image path, series_uid)`` or ``(image path, series_uid, volume_index)``.
    files : sequence of path, optional
        The files of the loaded volume when the pipeline knows them (``Volume.meta["files"]``
        recorded by the task); otherwise they are found again with
        :func:`volumetry.io.seg.series_files` (the loader's selection).
    cache : dict, optional
        Sources already read in this run, keyed by ``source``; the lesions of one scan share them.

    Raises
    ------
    InputError, DicomReadError, SeriesSelectionError
        The series cannot be found or read again.
    """
    from .seg import prepare_sources, series_files

    key = tuple(source)
    if cache is not None and key in cache:
        return cache[key]
    if files and not all(os.path.isfile(f) for f in files):
        files = None  # the study folder moved since the task ran: find the series again
    if not files:
        volume = source[2] if len(source) > 2 else None
        files = series_files(source[0], series_uid=source[1], volume_index=volume)
    sources = prepare_sources([Path(f) for f in files])
    if cache is not None:
        cache[key] = sources
    return sources


def _emptied_identifying(first_header, overrides: dict) -> dict:
    """Overrides emptying every :data:`SEG_IDENTIFYING` attribute the first source header holds
    (the SEG copies them from it): ``""``, or no item for a sequence."""
    from pydicom.datadict import dictionary_VR

    out = {}
    for keyword in SEG_IDENTIFYING:
        if keyword not in overrides and keyword in first_header:
            out[keyword] = [] if dictionary_VR(keyword) == "SQ" else ""
    return out


def write_seg_for(mask_vol, source: tuple, target: Path, subject_id: str, lesion_id: str,
                  pseudonymized: bool, *, files=None, cache: dict | None = None, engine: str = "fast") -> Path:
    """Write the DICOM SEG of a mask made on a DICOM series (``source`` = (path, series_uid[, volume_index])).

    The SEG references the source images and copies their study module, but it
    carries only the identifier of the outputs: PatientID and PatientName are
    the subject id of the table (the pseudonym with pseudonymisation), the birth
    date is emptied, and with pseudonymisation every identifying attribute the
    source holds (:data:`SEG_IDENTIFYING`: other names and IDs, birth time, physicians,
    accession number, study ID and description, admission, comments, ...) too, and the trial's
    subject IDs (:data:`SEG_SUBJECT_IDS`) read the pseudonym. ``files``/``cache``: see :func:`seg_sources`;
    ``engine``: see :func:`volumetry.io.seg.write_seg`.
    """
    from .seg import write_seg

    sources = seg_sources(source, files=files, cache=cache)
    overrides = {"PatientID": subject_id, "PatientName": subject_id, "PatientBirthDate": ""}
    if pseudonymized:
        overrides.update(AccessionNumber="", ReferringPhysicianName="")
        overrides.update({k: subject_id for k in SEG_SUBJECT_IDS if k in sources.datasets[0]})
        overrides.update(_emptied_identifying(sources.datasets[0], overrides))
        # behaviour added after this copy was taken (77aeb74's follow-up: pseudonymised SEGs carry no
        # contributing equipment); the same here, so that the comparison is of the writers alone
        overrides["ContributingEquipmentSequence"] = []
    return write_seg(mask_vol, sources, target, label=f"lesion {lesion_id}", overrides=overrides, engine=engine)
