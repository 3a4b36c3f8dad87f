"""Assess and write a run's outputs from the results store.

* the volume table (``volumes.csv``, ``volumes.parquet``) and ``summary.csv``
  through :mod:`volumetry.tables`, after the longitudinal assessment
  (:mod:`volumetry.longitudinal`) of each subject;
* the masks in a BIDS-derivatives layout::

      sub-<subject>/ses-<visit>/anat/sub-<subject>_ses-<visit>_desc-lesion_mask.nii.gz

  with ``_label-<lesion>`` before ``_desc`` when the subject has more than one
  lesion (``sub-01_ses-w12_label-2_desc-lesion_mask.nii.gz``), and next to it
  the DICOM SEG (``….dcm``, referencing the source images) when the scan is a
  DICOM series. Labels are made
  safe with :func:`volumetry.paths.safe_label` and every path is checked with
  :func:`volumetry.paths.safe_join`: nothing is written outside the output folder.

Everything is rebuilt from the database, so the outputs of a run that was
killed, or of a re-run where nothing was recomputed, are complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from .._version import __version__
from ..config import PipelineConfig
from ..paths import safe_join, safe_label
from ..store import ResultStore
from .overlaps import OVERLAP_FLAG, overlapping

log = logging.getLogger(__name__)

#: Methods (rows per scan) of the volume table.
TABLE_METHODS = ("voxel", "mesh", "ellipsoid-mri")


def mask_relpath(subject_id: str, visit: str, lesion_id: str, several_lesions: bool) -> str:
    """Relative path of a scan's mask in the BIDS-derivatives layout (see the module docstring)."""
    sub, ses = safe_label(subject_id), safe_label(visit)
    label = f"_label-{safe_label(lesion_id)}" if several_lesions else ""
    return f"sub-{sub}/ses-{ses}/anat/sub-{sub}_ses-{ses}{label}_desc-lesion_mask.nii.gz"


def _scan_rows(store: ResultStore, scan: dict, cfg: PipelineConfig, overlaps: dict | None = None) -> list[dict]:
    """The table rows (one per method) of one scan, from the store (``overlaps``: see
    :func:`volumetry.pipeline.overlaps.overlapping`; an overlapping scan is flagged)."""
    from ..io.reader import geometry_flags
    from ..measure import Measurement
    from ..tables import measurement_rows

    base = {"subject_id": scan["subject_id"], "lesion_id": scan["lesion_id"], "visit": scan["visit"],
            "scan_date": scan["scan_date"], "course": scan["course"]}
    prov = {"series_uid": scan["series_uid"], "input_hash": scan["input_hash"], "config_hash": cfg.sha256,
            "software_version": scan["package_version"], "computed_at": scan["created_at"]}
    m = store.measurement(scan["task_key"]) if scan["status"] == "ok" else None
    if m is None:
        f = store.failure(scan["task_key"])
        reason = f"{f['stage']}: {f['message']}" if f else "no result recorded; re-run"
        return [{**base, **prov, "method": method, "volume_ml": None, "status": "failed", "reason": reason,
                 "flags": []} for method in TABLE_METHODS]
    data = m["data"]
    meas = Measurement(**data["measurement"])
    rows = measurement_rows(meas, methods=TABLE_METHODS, **base, **prov)
    extra = list((data.get("segmentation") or {}).get("flags") or [])
    extra += list((data.get("registration") or {}).get("flags") or [])
    extra += geometry_flags((data.get("image") or {}).get("warnings"))
    if (data.get("segmentation") or {}).get("source") == "propagated":
        extra.append("propagated")
    if overlaps and (scan["subject_id"], scan["visit"], scan["lesion_id"]) in overlaps:
        extra.append(OVERLAP_FLAG)
    for r in rows:
        r["flags"] = list(dict.fromkeys(list(r["flags"]) + extra))
    return rows


def assess(store: ResultStore, run_id: int, idents: list[tuple], cfg: PipelineConfig):
    """Build the volume table of the study's scans, re-assessing only changed subjects.

    Parameters
    ----------
    store : ResultStore
    run_id : int
    idents : list of tuple
        ``(subject_id, visit, lesion_id)`` of the study's scans (output identifiers).
    cfg : PipelineConfig

    Returns
    -------
    (pandas.DataFrame, list of tuple)
        The conformed volume table, and the ``(subject_id, lesion_id)`` whose
        assessment was recomputed in this run.
    """
    import pandas as pd

    from ..tables import table_from_rows

    scans = store.scans(idents)
    by_subject: dict[str, list[dict]] = {}
    for s in scans:
        by_subject.setdefault(s["subject_id"], []).append(s)
    crit_hash = cfg.section_hash("courses", "response")
    frames = []
    assessed = []
    todo: dict[str, str] = {}
    rows: list[dict] = []
    for subject, subject_scans in by_subject.items():
        key = hashlib.sha256(json.dumps({
            "scans": sorted((s["visit"], s["lesion_id"], s["task_key"], s["status"], s["course"], s["scan_date"])
                            for s in subject_scans),
            "criteria": crit_hash, "version": __version__,
        }, sort_keys=True, default=str).encode()).hexdigest()
        stored = store.assessment(subject, "*")
        if stored is not None and stored["assess_key"] == key:
            frames.append(pd.DataFrame.from_records(stored["data"]))
            continue
        todo[subject] = key
        overlaps = overlapping(store, subject_scans)
        visits: dict[str, list[str]] = {}
        for (_, visit, lesion) in overlaps:
            visits.setdefault(visit, []).append(lesion)
        for visit, lesions in visits.items():
            log.warning("%s %s: the masks of lesions %s share voxels; flagged %s, and the visit's total is left "
                        "incomplete (a sum would count them twice): merge the lesions or correct the masks",
                        subject, visit, ", ".join(sorted(lesions)), OVERLAP_FLAG)
        rows.extend(r for s in subject_scans for r in _scan_rows(store, s, cfg, overlaps))
    if todo:
        # one call for every subject to re-assess (the assessment is per subject inside); the rows
        # conformed as conform(pandas.DataFrame.from_records(rows)) conforms them, without the frame
        table = _assess_subject(table_from_rows(rows), cfg)
        by_subject_records = _records_by_subject(table)
        store.record_assessments(run_id, [(subject, "*", key, by_subject_records.get(subject, []))
                                          for subject, key in todo.items()], cfg.sha256)
        assessed.extend(todo)
        frames.append(table)
    return _ordered_table(frames, idents), assessed


def _ordered_table(frames: list, idents: list[tuple]):
    """The conformed table of the stored and the new ``frames``, its rows in the study's
    order (subject, then ``idents`` order, lesion, method)."""
    import pandas as pd

    from ..tables import _is_conformed, conform

    if not frames:
        return conform(pd.DataFrame(columns=["subject_id", "lesion_id", "visit", "method"]))
    # conform is idempotent and keeps a conformed frame's values and dtypes: one frame needs
    # it at most once (not when it is conformed already: the table just assessed); several are
    # conformed each, then together (a concat may widen a dtype)
    if len(frames) == 1:
        table = frames[0] if _is_conformed(frames[0]) else conform(frames[0])
    else:
        table = conform(pd.concat([conform(f) for f in frames], ignore_index=True))
    order = {ident: n for n, ident in enumerate(idents)}
    # the four sort keys in a frame of their own (the table's columns are not copied and sorted with
    # them: only their order is wanted); its stable sort orders the table's rows as sorting the table
    # with an _order column would, missing keys last, and take makes a new frame (the one given,
    # maybe the caller's own, is not changed) in the table's dtypes, with only the index renumbered
    subjects, visits, lesions = (table[c].array for c in ("subject_id", "visit", "lesion_id"))
    keys = pd.DataFrame({"subject_id": subjects,
                         "_order": [order.get(ident, len(order)) for ident in zip(subjects, visits, lesions)],
                         "lesion_id": lesions, "method": table["method"].array})
    rows = keys.sort_values(["subject_id", "_order", "lesion_id", "method"], kind="stable").index.to_numpy()
    return table.take(rows).reset_index(drop=True)


def _records_by_subject(table) -> dict[str, list[dict]]:
    """The JSON records (``to_json(orient="records", date_format="iso")``, floats exact) of ``table``'s rows,
    grouped by ``subject_id`` in row order: one export for the whole table (each value is
    written on its own, so a row's record does not depend on the other rows)."""
    import pandas as pd

    records = json.loads(table.to_json(orient="records", date_format="iso"))
    # to_json keeps 10 decimals: a cached subject's volumes would come back rounded (~1e-11 mL)
    # and a re-run would rewrite the tables with other digits. Floats are stored exactly.
    for column, dtype in table.dtypes.items():  # the dtypes read once, not a Series made per column
        if dtype.kind == "f":
            for record, value in zip(records, table[column].tolist()):
                record[column] = None if pd.isna(value) else float(value)
    out: dict[str, list[dict]] = {}
    # the Python values the Series would yield one by one (str, or pd.NA for a missing one)
    for subject, record in zip(table["subject_id"].tolist(), records):
        out.setdefault(subject, []).append(record)
    return out


def course_schedule(cfg: PipelineConfig):
    """The :class:`volumetry.longitudinal.courses.CourseSchedule` of the pipeline's ``courses`` section.

    Raises
    ------
    ConfigError
        Values the schedule refuses (e.g. a window of half a course or more), naming the pipeline file.
    """
    from ..errors import ConfigError
    from ..longitudinal.courses import CourseSchedule

    c = cfg.courses
    try:
        return CourseSchedule(course_weeks=c["length_weeks"], max_courses=c["max_courses"],
                              window_days=c["visit_window_days"])
    except ConfigError as exc:
        raise ConfigError(f"{cfg.path or '<pipeline>'}: key 'courses': {exc}") from None


def check_criteria(cfg: PipelineConfig) -> None:
    """Fail early on an unknown ``response.criteria`` (ConfigError naming the pipeline file)."""
    from ..errors import ConfigError, InputError
    from ..longitudinal.criteria import get_criteria

    try:
        get_criteria(cfg.response["criteria"])
    except (ConfigError, InputError) as exc:
        raise ConfigError(f"{cfg.path or '<pipeline>'}: key 'response.criteria': {exc}") from None


def _assess_subject(df, cfg: PipelineConfig):
    """Longitudinal assessment (courses, percent change, response) of some subjects' rows
    (each subject is assessed on its own rows only)."""
    from ..longitudinal import assess as _assess

    return _assess(df, criteria=cfg.response["criteria"], confirm=cfg.response["confirm"],
                   schedule=course_schedule(cfg))


def write_outputs(store: ResultStore, table, idents: list[tuple], cfg: PipelineConfig, out_dir: Path,
                  sources: dict | None = None, pseudonymized: bool = False, date_shifts: dict | None = None,
                  uid_map=None, source_files: dict | None = None) -> dict:
    """Write the tables and masks of a run into ``out_dir``.

    ``uid_map`` (pseudonymised runs): real DICOM UID → pseudo UID
    (:meth:`volumetry.pseudonym.Pseudonymizer.uid`). The store then holds pseudo series UIDs;
    ``sources`` give the real ones where the runner knows them, and the others are found
    again in the source folder (:func:`real_series_uid`). The SEGs reference pseudo UIDs.
    ``source_files`` (in memory only, never written): maps a scan's identifiers to the files
    the runner loaded it from in this run; its SEG uses them (the store holds none when
    pseudonymising) instead of listing the source folder again (:func:`seg_sources`).

    Returns
    -------
    dict
        Name → path of each file written (``volumes_csv``, ``volumes_parquet``,
        ``summary_csv``, ``masks`` (folder), ``database``).

    Raises
    ------
    InputError
        A path would leave the output folder (cannot happen with sanitised
        labels; checked anyway).
    """
    from ..tables import write_tables

    out_dir = Path(out_dir)
    written = dict(write_tables(table, out_dir, summary=cfg.outputs["summary"]))
    if "parquet" not in cfg.outputs["tables"]:
        Path(written.pop("volumes_parquet")).unlink(missing_ok=True)
    if "csv" not in cfg.outputs["tables"]:
        Path(written.pop("volumes_csv")).unlink(missing_ok=True)
    if cfg.outputs["masks"]:
        n = write_masks(store, idents, out_dir, sources=sources if cfg.outputs["seg"] else None,
                        pseudonymized=pseudonymized, date_shifts=date_shifts, uid_map=uid_map,
                        source_files=source_files)
        written["masks"] = out_dir
        log.info("masks: %d written or refreshed", n)
    written["database"] = out_dir / "results.sqlite"
    if cfg.outputs["report"]:
        try:
            from ..report.build import build_report
        except ImportError:  # the report package is optional
            log.warning("outputs.report is true but volumetry.report is not available; no report written")
        else:
            try:
                written["report"] = build_report(out_dir, images=_report_images(store, idents, sources, uid_map)
                                                 if pseudonymized else None)
            except Exception as exc:  # noqa: BLE001 -- the tables and masks are written; say what went wrong
                log.error("the QC report could not be built (%s: %s); the tables and masks are complete. "
                          "Retry with 'volumetry report %s'", type(exc).__name__, exc, out_dir)
    return written


def _report_images(store: ResultStore, idents: list[tuple], sources: dict | None, uid_map=None) -> dict | None:
    """Image of each scan for the report's overlays, passed in-process: a pseudonymised run
    stores no input path (it may hold names), so the report cannot find the images itself.
    Keyed by the table's (shown) identifiers; the series is the one actually loaded (its real
    UID: the store holds the pseudo one, see :func:`real_series_uid`)."""
    if not sources:
        return None
    images = {}
    cache: dict = {}
    for scan in store.scans(idents):
        ident = (scan["subject_id"], scan["visit"], scan["lesion_id"])
        if ident in sources:
            try:
                uid = real_series_uid(scan["series_uid"], sources[ident], uid_map, cache)
            except Exception as exc:  # noqa: BLE001 -- the report shows the scan without its image
                log.warning("%s %s lesion %s: the report cannot find the series again (%s)", *ident, exc)
                uid = sources[ident][1]
            images[ident] = (sources[ident][0], uid or sources[ident][1])
    return images


def real_series_uid(stored: str | None, source: tuple, uid_map=None, cache: dict | None = None) -> str | None:
    """The real UID of the series a scan was loaded from, given the UID the store holds.

    Parameters
    ----------
    stored : str or None
        ``scans.series_uid``: the real UID, or with ``uid_map`` its pseudo UID.
    source : tuple
        ``(image path, real series UID or None)`` from the runner.
    uid_map : callable, optional
        Real → pseudo UID (pseudonymised runs); without it ``stored`` is returned.
    cache : dict, optional
        Series (and stack) UIDs of the folders already listed in this run, keyed by path.

    Returns
    -------
    str or None
        The real series (or stack) UID; ``stored`` when it is real already (a folder
        written before UIDs were pseudonymised).

    Raises
    ------
    InputError
        No series of the source folder has that pseudo UID (the folder changed).
    """
    if uid_map is None or not stored:
        return stored
    if source[1] and (stored == source[1] or uid_map(source[1]) == stored):
        return source[1]
    from ..errors import InputError
    from ..io.dicom import stacks_for_path

    key = str(source[0])
    if cache is None or key not in cache:
        uids = sorted({u for st in stacks_for_path(source[0]) for u in (st.stack_id, st.series_uid) if u})
        if cache is not None:
            cache[key] = uids
    else:
        uids = cache[key]
    for uid in uids:
        if uid == stored or uid_map(uid) == stored:
            return uid
    raise InputError(f"{source[0]}: no series has the pseudo UID {stored} recorded for this scan; "
                     "the folder changed since the scan was measured: re-run with a new --out folder")


def _is_dicom(path: Path) -> bool:
    from ..io.nifti import ITK_SUFFIXES, NIFTI_SUFFIXES, has_suffix

    return path.is_dir() or not (has_suffix(path, NIFTI_SUFFIXES) or has_suffix(path, ITK_SUFFIXES))


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
    from ..io.seg import prepare_sources, series_files

    key = tuple(source)
    if cache is not None and key in cache:
        return cache[key]
    if files and not all(os.path.isfile(f) for f in files):
        files = None  # the study folder moved since the task ran: find the series again
    if not files:
        volume = source[2] if len(source) > 2 else None
        files = series_files(source[0], series_uid=source[1], volume_index=volume)
    sources = prepare_sources(list(files))  # paths or strings (the reader makes Paths of them once)
    if cache is not None:
        cache[key] = sources
    return sources


#: Attributes the SEG copies from its source (patient, study and clinical trial modules) that
#: identify the patient or the people and visit around the scan (DICOM PS3.15 basic profile): a
#: pseudonymised run writes them empty when the source has them.
SEG_IDENTIFYING = (
    "PatientBirthDate", "PatientBirthTime", "PatientBirthDateInAlternativeCalendar",
    "PatientDeathDateInAlternativeCalendar", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence",
    "OtherPatientNames", "OtherPatientIDsSequence", "ReferencedPatientPhotoSequence", "ReferencedPatientSequence",
    "ResponsiblePerson", "ResponsibleOrganization", "PatientComments", "AccessionNumber",
    "IssuerOfAccessionNumberSequence", "ReferringPhysicianName", "ReferringPhysicianIdentificationSequence",
    "ConsultingPhysicianName", "ConsultingPhysicianIdentificationSequence", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "StudyID", "AdmissionID", "IssuerOfAdmissionIDSequence",
    "ServiceEpisodeID", "ServiceEpisodeDescription", "IssuerOfServiceEpisodeIDSequence", "AdmittingDiagnosesDescription",
    "MedicalAlerts", "Allergies", "Occupation", "AdditionalPatientHistory", "LastMenstrualDate", "ReasonForVisit",
    "PatientState",
    # free text that a site may fill with a name or a request ("MRI OF JANE DOE", "Dr X's clinic")
    "StudyDescription", "RequestingService", "ClinicalTrialTimePointDescription", "ReasonForVisitCodeSequence",
    "AdmittingDiagnosesCodeSequence",
)

#: Identifiers of the trial subject that a pseudonymised SEG carries as the pseudonym (type 1C in the
#: clinical trial subject module: replaced, not emptied) when the source holds them.
SEG_SUBJECT_IDS = ("ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID")


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
                  pseudonymized: bool, *, files=None, cache: dict | None = None, engine: str = "fast",
                  date_shift_days: int = 0, uid_map=None) -> Path:
    """Write the DICOM SEG of a mask made on a DICOM series (``source`` = (path, series_uid[, volume_index])).

    The SEG references the source images and copies their study module, but it
    carries only the identifier of the outputs: PatientID and PatientName are
    the subject id of the table (the pseudonym with pseudonymisation), the birth
    date is emptied, and with pseudonymisation every identifying attribute the
    source holds (:data:`SEG_IDENTIFYING`: other names and IDs, birth time, physicians,
    accession number, study ID and description, admission, comments, ...) too, the trial's
    subject IDs (:data:`SEG_SUBJECT_IDS`) read the pseudonym, and the contributing-equipment
    items (the source's institution, station, device serial number and acquisition date and
    time) are left out. ``date_shift_days`` (pseudonymised runs that move dates): the StudyDate
    moves back by that many days. ``uid_map`` (pseudonymised runs): every instance UID of
    the source (study, series, SOP instance, frame of reference) the SEG copies or
    references becomes its pseudo UID (see :func:`volumetry.io.seg.write_seg`): the SEG no
    longer attaches to the real study in a PACS, but its frames keep their positions.
    ``files``/``cache``: see :func:`seg_sources`; ``engine``: see :func:`volumetry.io.seg.write_seg`.
    """
    from ..io.seg import write_seg

    sources = seg_sources(source, files=files, cache=cache)
    overrides = {"PatientID": subject_id, "PatientName": subject_id, "PatientBirthDate": ""}
    if pseudonymized:
        overrides.update(AccessionNumber="", ReferringPhysicianName="")
        overrides.update({k: subject_id for k in SEG_SUBJECT_IDS if k in sources.datasets[0]})
        overrides.update(_emptied_identifying(sources.datasets[0], overrides))
        overrides["ContributingEquipmentSequence"] = []
        if date_shift_days:
            overrides["StudyDate"] = _moved_da(sources.datasets[0].get("StudyDate"), date_shift_days)
    return write_seg(mask_vol, sources, target, label=f"lesion {lesion_id}", overrides=overrides, engine=engine,
                     uid_map=uid_map if pseudonymized else None)


def _moved_da(value, days: int) -> str:
    """A DICOM date (DA ``YYYYMMDD``) moved back by ``days``; empty when it is empty or not a date."""
    import datetime as dt

    text = str(value or "").strip()
    try:
        return (dt.datetime.strptime(text, "%Y%m%d").date() - dt.timedelta(days=int(days))).strftime("%Y%m%d")
    except ValueError:
        return ""


def _image_info_of(store: ResultStore, task_key: str) -> dict:
    """The loaded image's description the task recorded (``image`` of the measurement), or {}."""
    m = store.measurement(task_key)
    return dict(((m or {}).get("data") or {}).get("image") or {})


def write_masks(store: ResultStore, idents: list[tuple], out_dir: Path, *, sources: dict | None = None,
                pseudonymized: bool = False, date_shifts: dict | None = None, uid_map=None,
                source_files: dict | None = None) -> int:
    """Write (or refresh) the NIfTI mask of every successful scan, and its DICOM SEG
    (``…_desc-lesion_mask.dcm``) when the scan's image is a DICOM series and
    ``sources`` maps the scan to ``(image path, series_uid)``; remove the stale
    masks of a scan that failed. ``date_shifts`` maps a scan's ``(subject_id, visit,
    lesion_id)`` to the days its SEG's StudyDate moves back (pseudonymised dates); ``uid_map``
    (pseudonymised runs) and ``source_files`` (the files each scan computed in this run was
    loaded from): see :func:`write_outputs`. The masks written are recorded in the store
    (path and file hash) in one transaction at the end (or when an error stops the loop):
    a run killed before that writes them again.
    Returns the number of NIfTI files written."""
    from ..io.nifti import nifti_mask_bytes
    from .tasks import sha256_of_file, unpack_mask

    for stale in list(Path(out_dir).glob("sub-*/ses-*/anat/.*.tmp*")):  # left by a run killed while writing
        stale.unlink(missing_ok=True)
    lesions: dict[str, set] = {}
    for s, _, l in idents:
        lesions.setdefault(s, set()).add(l)
    n_written = 0
    seg_cache: dict = {}  # source headers read once per series in this run
    uid_cache: dict = {}  # series UIDs of the source folders listed in this run
    written: list[tuple[str, str, str]] = []  # (task_key, path, file_sha256) of the masks written
    try:
        for scan in store.scans(idents):
            rel = mask_relpath(scan["subject_id"], scan["visit"], scan["lesion_id"],
                               len(lesions[scan["subject_id"]]) > 1)
            target = safe_join(out_dir, *rel.split("/"))
            seg_target = target.with_name(target.name.replace(".nii.gz", ".dcm"))
            mask = store.mask(scan["task_key"]) if scan["status"] == "ok" else None
            if mask is None:
                target.unlink(missing_ok=True)
                seg_target.unlink(missing_ok=True)
                continue
            ident = (scan["subject_id"], scan["visit"], scan["lesion_id"])
            source = (sources or {}).get(ident)
            stored_uid = scan["series_uid"]
            want_seg = source is not None and _is_dicom(Path(source[0]))
            fresh = target.is_file() and mask["path"] == rel and mask["file_sha256"] == sha256_of_file(target)
            if fresh and (seg_target.is_file() or not want_seg):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            vol = unpack_mask(mask["data"], mask["grid"])
            if not fresh:
                # the bytes write_nifti writes for a boolean 3D mask (.nii.gz), hashed as written
                # instead of read back
                data = nifti_mask_bytes(vol)
                tmp = target.with_name("." + target.name.replace(".nii.gz", ".tmp.nii.gz"))
                tmp.write_bytes(data)
                os.replace(tmp, target)
                written.append((scan["task_key"], rel, hashlib.sha256(data).hexdigest()))
                n_written += 1
            if want_seg:
                try:
                    if stored_uid:  # the series actually loaded (chosen by the rule); real, not the stored pseudo UID
                        source = (source[0], real_series_uid(stored_uid, source, uid_map if pseudonymized else None,
                                                             uid_cache))
                    image_info = _image_info_of(store, scan["task_key"])
                    if image_info.get("volume_index") is not None:  # the volume of a multi-volume series
                        source = (*source[:2], int(image_info["volume_index"]))
                    write_seg_for(vol, source, seg_target, scan["subject_id"], scan["lesion_id"], pseudonymized,
                                  files=(source_files or {}).get(ident) or image_info.get("files"),
                                  cache=seg_cache,
                                  date_shift_days=(date_shifts or {}).get(ident, 0), uid_map=uid_map)
                except Exception as exc:  # noqa: BLE001 -- the NIfTI mask and the tables stand; say why no SEG
                    log.warning("%s %s lesion %s: no DICOM SEG written (%s: %s)", scan["subject_id"], scan["visit"],
                                scan["lesion_id"], type(exc).__name__, exc)
            else:
                seg_target.unlink(missing_ok=True)
    finally:
        store.set_mask_files(written)
    desc = safe_join(out_dir, "dataset_description.json")
    if not desc.exists():
        desc.write_text(json.dumps({
            "Name": "volumetry lesion masks", "BIDSVersion": "1.9.0", "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "volumetry", "Version": __version__}],
        }, indent=2) + "\n")
    return n_written
