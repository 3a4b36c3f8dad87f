"""Fast DICOM SEG encoder: the instance highdicom builds, written without building it.

highdicom's ``Segmentation`` spends tens of milliseconds per instance on IOD
table look-ups, spatial checks done per source image and pydicom's generic
writer, while a volumetry SEG always has the same structure: one BINARY
segment over single-frame source images whose every frame sits on a source
image (spatial locations preserved). This module reproduces, for that case
only, the data set highdicom 0.28 makes (same attributes, VRs and values —
including highdicom's implementation UID and its contributing-equipment item,
since the file is highdicom's instance encoded another way) and encodes the
bulky parts (references, per-frame functional groups, pixel data) directly as
explicit VR little endian bytes. The small top-level attributes are written
by pydicom.

:func:`plan` decides whether the fast path applies and returns None otherwise
(enhanced or unusual sources, a frame not on a source image, values
highdicom would reject or transform); the caller then uses highdicom.
``tests/test_seg_fast.py`` proves, case by case, that both writers give the
same data set except UIDs and creation dates/times.

What does not change between SEGs is made once: what is read and checked from a
series' first header, the attributes copied from it and the constant ones
(encoded once per character set), its acquisition-equipment item, the placing
of the planes among the sources with the encoded references and per-frame items
(per series, in the ``memo`` that :class:`volumetry.io.seg.SegSources` keeps:
the lesions of one series share them), highdicom's orientation / pixel-measure
items (per stored source values), the acquisition-equipment item of one
equipment (all but its date/time), a lesion's segment description (per label),
highdicom's own equipment item (all but its date/time) and elements of plain
string or integer values, each encoded once. ``tests/test_seg_speed_equality.py``
checks that the files are byte for byte those of the writer before this
(``tests/seg_reference``), ``tests/test_seg_write_cache_equality.py`` those of
the writer before the per-series caches (``tests/seg_frozen_write``).
"""
from __future__ import annotations

import datetime
import functools
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dicom_values import decode_raw

#: Classic single-frame image storage SOP classes handled by the fast path
#: (MR, CT); anything else goes through highdicom.
FAST_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.2"})

#: Segmentation Storage SOP class.
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_SPATIAL_MATCH_MM = 1e-3  # highdicom's plane-to-source matching distance

#: Top-level tags written here from per-frame data (an override naming one sends the SEG to highdicom).
_BULK_TAGS = (0x00081115, 0x00082112, 0x52009230, 0x7FE00010)
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"})
_ITEM = struct.pack("<HH", 0xFFFE, 0xE000)
_u16 = struct.Struct("<H").pack
_u32 = struct.Struct("<I").pack


# ----------------------------------------------------------------------------- encoding
def _el(tag: int, vr: str, value: bytes) -> bytes:
    """One explicit-VR little-endian element (``value`` already padded to even length)."""
    head, long_vr = _el_head(tag, vr)
    return head + (_u32 if long_vr else _u16)(len(value)) + value


@functools.lru_cache(maxsize=4096)
def _el_head(tag: int, vr: str) -> tuple[bytes, bool]:
    """The element's bytes before its length (tag, VR and a long VR's 2 reserved bytes) and whether
    the length takes 4 bytes, made once per tag and VR."""
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii")
    long_vr = vr in _LONG_VRS
    return (head + b"\0\0" if long_vr else head), long_vr


def _sq(tag: int, items: Sequence[bytes]) -> bytes:
    """A sequence of defined length whose items (encoded bodies) have defined lengths (as pydicom writes)."""
    body = b"".join(_ITEM + _u32(len(it)) + it for it in items)
    return _el(tag, "SQ", body)


def _text(value: str, pad: bytes = b" ") -> bytes:
    b = value.encode("ascii")
    return b + pad if len(b) % 2 else b


@functools.lru_cache(maxsize=4096)
def _ds_string(value: str) -> str:
    """The string pydicom's ``DS(value, auto_format=True)`` keeps for a decimal string (highdicom's
    plane position values): the stripped string when it is a valid DS, else the number reformatted."""
    from pydicom.valuerep import format_number_as_ds, is_valid_ds

    text = value.strip()
    return text if is_valid_ds(text) else format_number_as_ds(float(text))


_STRING_VRS = frozenset({"AE", "AS", "CS", "UI", "UR"})
_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC", "PN"})
_BINARY = {"US": "H", "UL": "I", "SS": "h", "SL": "i", "FL": "f", "FD": "d"}


class _Top(dict):
    """``tag -> (VR, value)``, filled by keyword like a pydicom ``Dataset`` (values stored as
    given; :func:`_encode_element` writes them as pydicom's writer would)."""

    def __setattr__(self, keyword: str, value: Any) -> None:
        tag, vr = _tag_vr(keyword)
        self[tag] = (vr, value)

    def add(self, elem) -> None:
        self[int(elem.tag)] = (elem.VR, elem.value)


@functools.lru_cache(maxsize=None)
def _tag_vr(keyword: str) -> tuple[int, str]:
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    tag = tag_for_keyword(keyword)
    if tag is None:
        raise AttributeError(f"unknown DICOM keyword {keyword!r}")
    return int(tag), dictionary_VR(tag)


def _data_element(keyword: str, value: Any):
    """The element pydicom's ``setattr(dataset, keyword, value)`` makes (value converted to its VR)."""
    from pydicom.dataelem import DataElement

    tag, vr = _tag_vr(keyword)
    return DataElement(tag, vr, value)


def _is_multi(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"


def _encode_element(tag: int, vr: str, value: Any, encodings) -> bytes:
    """One element as pydicom's ``write_data_element`` encodes it (explicit VR little endian);
    the values it does not write here (dates and times, non-ASCII text, other VRs) are written
    by pydicom itself."""
    if value is None or (isinstance(value, (str, bytes)) and len(value) == 0) or \
            (_is_multi(value) and len(value) == 0):
        return _el(tag, vr, b"")
    if vr == "SQ":
        return _sq(tag, [_encode_item(item, encodings) for item in value])
    values = list(value) if _is_multi(value) else [value]
    if vr in _STRING_VRS or vr in _TEXT_VRS:
        try:
            raw = "\\".join(str(v) for v in values).encode("ascii")
        except UnicodeEncodeError:
            return _pydicom_element(tag, vr, value, encodings)
        pad = b"\0" if vr == "UI" else b" "
        return _el(tag, vr, raw + pad if len(raw) % 2 else raw)
    if vr in ("DS", "IS"):
        text = "\\".join(getattr(v, "original_string", None) or str(v) for v in values)
        return _el(tag, vr, _text(text))
    fmt = _BINARY.get(vr)
    if fmt is not None:
        return _el(tag, vr, struct.pack("<" + fmt * len(values), *values))
    if vr == "AT":
        return _el(tag, vr, b"".join(struct.pack("<HH", int(t) >> 16, int(t) & 0xFFFF) for t in values))
    if vr in ("DA", "TM", "DT") and not _is_multi(value):
        # pydicom writes a date/time's original string (a str, or the one its DA/TM/DT object keeps)
        text = value if isinstance(value, str) else getattr(value, "original_string", None)
        if isinstance(text, str):
            return _el(tag, vr, _text(text))
    if vr == "OB" and isinstance(value, bytes):
        return _el(tag, vr, value + b"\0" if len(value) % 2 else value)
    return _pydicom_element(tag, vr, value, encodings)


def _encode_item(item, encodings) -> bytes:
    if isinstance(item, _PreEncoded):
        return item.encode_item(encodings)
    if isinstance(item, dict):
        return b"".join(_encode_element(tag, vr, value, encodings) for tag, (vr, value) in sorted(item.items()))
    return b"".join(_encode_element(int(e.tag), e.VR, e.value, encodings) for e in item)


def _pydicom_element(tag: int, vr: str, value: Any, encodings) -> bytes:
    from pydicom.dataelem import DataElement
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_data_element(fp, DataElement(tag, vr, value), encodings)
    return fp.getvalue()


@functools.lru_cache(maxsize=None)
def _encoded_dataset(key: str) -> bytes:
    """Body bytes of a constant highdicom data set (code items), encoded once by pydicom."""
    from highdicom.image import _PURPOSE_CODE
    from highdicom.seg.sop import _DERIVATION_CODE

    return _encode_body({"purpose": _PURPOSE_CODE, "derivation": _DERIVATION_CODE}[key], None)


def _encode_body(ds, encodings) -> bytes:
    """Elements of a pydicom data set as explicit VR little endian bytes (pydicom's writer)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds, parent_encoding=encodings or "iso8859")
    return fp.getvalue()


#: Root attributes highdicom 0.28 copies from an MR or CT image (the Specimen module of the Image
#: IE and every module of the Patient and Study IEs of those IODs), so that the fast path does not
#: load highdicom's tables of the standard (0.2 s); ``tests/test_seg_fast.py`` checks this list
#: against the tables.
COPIED_KEYWORDS = (
    "ContainerIdentifier", "IssuerOfTheContainerIdentifierSequence", "AlternateContainerIdentifierSequence",
    "ContainerTypeCodeSequence", "ContainerDescription", "ContainerComponentSequence",
    "SpecimenDescriptionSequence", "ReferencedPatientSequence", "PatientName", "PatientID",
    "IssuerOfPatientID", "TypeOfPatientID", "IssuerOfPatientIDQualifiersSequence",
    "SourcePatientGroupIdentificationSequence", "GroupOfPatientsIdentificationSequence", "PatientBirthDate",
    "PatientBirthTime", "PatientBirthDateInAlternativeCalendar", "PatientDeathDateInAlternativeCalendar",
    "PatientAlternativeCalendar", "PatientSex", "QualityControlSubject", "StrainDescription",
    "StrainNomenclature", "StrainStockSequence", "StrainAdditionalInformation", "StrainCodeSequence",
    "GeneticModificationsSequence", "OtherPatientNames", "OtherPatientIDsSequence",
    "ReferencedPatientPhotoSequence", "EthnicGroupCodeSequence", "PatientSpeciesDescription",
    "PatientSpeciesCodeSequence", "PatientBreedDescription", "PatientBreedCodeSequence",
    "BreedRegistrationSequence", "ResponsiblePerson", "ResponsiblePersonRole", "ResponsibleOrganization",
    "PatientComments", "PatientIdentityRemoved", "DeidentificationMethod",
    "DeidentificationMethodCodeSequence", "ClinicalTrialSponsorName", "ClinicalTrialProtocolID",
    "ClinicalTrialProtocolName", "IssuerOfClinicalTrialProtocolID", "OtherClinicalTrialProtocolIDsSequence",
    "ClinicalTrialSiteID", "ClinicalTrialSiteName", "IssuerOfClinicalTrialSiteID", "ClinicalTrialSubjectID",
    "IssuerOfClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID", "IssuerOfClinicalTrialSubjectReadingID",
    "ClinicalTrialProtocolEthicsCommitteeName", "ClinicalTrialProtocolEthicsCommitteeApprovalNumber",
    "StudyDate", "StudyTime", "AccessionNumber", "IssuerOfAccessionNumberSequence", "ReferringPhysicianName",
    "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianName",
    "ConsultingPhysicianIdentificationSequence", "StudyDescription", "ProcedureCodeSequence",
    "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "ReferencedStudySequence", "StudyInstanceUID", "StudyID",
    "RequestingService", "RequestingServiceCodeSequence", "ReasonForPerformedProcedureCodeSequence",
    "AdmittingDiagnosesDescription", "AdmittingDiagnosesCodeSequence", "PatientAge", "PatientSize",
    "PatientSizeCodeSequence", "PatientBodyMassIndex", "MeasuredAPDimension", "MeasuredLateralDimension",
    "PatientWeight", "MedicalAlerts", "Allergies", "Occupation", "SmokingStatus", "AdditionalPatientHistory",
    "PregnancyStatus", "LastMenstrualDate", "PatientSexNeutered", "ReasonForVisit",
    "ReasonForVisitCodeSequence", "AdmissionID", "IssuerOfAdmissionIDSequence", "ServiceEpisodeID",
    "ServiceEpisodeDescription", "IssuerOfServiceEpisodeIDSequence", "PatientState",
    "ClinicalTrialTimePointID", "ClinicalTrialTimePointDescription", "LongitudinalTemporalOffsetFromEvent",
    "LongitudinalTemporalEventType", "ClinicalTrialTimePointTypeCodeSequence",
    "IssuerOfClinicalTrialTimePointID", "ConsentForClinicalTrialUseSequence",
)


@functools.lru_cache(maxsize=8)
def _copied_tags(sop_class_uid: str) -> tuple[int, ...]:
    """Tags of the root attributes highdicom copies from a source of this SOP class (see
    :data:`COPIED_KEYWORDS`; other SOP classes are looked up in highdicom's tables)."""
    from pydicom.datadict import tag_for_keyword

    if sop_class_uid in FAST_SOP_CLASSES:
        return tuple(int(tag_for_keyword(k)) for k in COPIED_KEYWORDS)
    return _copied_tags_from_standard(sop_class_uid)


def _copied_tags_from_standard(sop_class_uid: str) -> tuple[int, ...]:
    """Root attributes highdicom copies from a source of this SOP class (Specimen module of the
    Image IE, then every module of the Patient and Study IEs), in highdicom's order, from its tables."""
    from highdicom._standard_utils import get_iod_module_map, get_module_attribute_map, get_sop_class_iod_map
    from pydicom.datadict import tag_for_keyword

    iod_modules = get_iod_module_map()[get_sop_class_iod_map()[sop_class_uid]]
    attributes = get_module_attribute_map()
    keys = [m["key"] for m in iod_modules if m["ie"] == "Image" and m["key"] == "specimen"]
    keys += [m["key"] for m in iod_modules if m["ie"] == "Patient"]
    keys += [m["key"] for m in iod_modules if m["ie"] == "Study"]
    tags = []
    for key in keys:
        for item in attributes[key]:
            if len(item["path"]) == 0:
                tags.append(int(tag_for_keyword(str(item["keyword"]))))
    return tuple(tags)


def _acquisition_item(dataset) -> "_PreEncoded | None":
    """``highdicom.ContributingEquipment.for_image_acquisition(dataset)`` for a source of
    :data:`FAST_SOP_CLASSES` (image IODs: highdicom's pixel-data look-up in the standard's tables, the
    slow part, is known to pass), as the item that encodes it; None where highdicom raises.

    The attributes other than ContributionDateTime (the equipment: manufacturer, model, software,
    serial number, institution, station) are made into highdicom's item once per values
    (:func:`_acquisition_template`) and encoded once per character set; the acquisition date and
    time, which changes with every scan, is added as highdicom sets it.
    """
    from pydicom.valuerep import DT

    try:
        manufacturer = dataset.get("Manufacturer")
        if manufacturer is None or manufacturer == "":
            return None
        contribution_datetime = dataset.get("AcquisitionDateTime")
        if contribution_datetime is None:
            date, time = dataset.get("AcquisitionDate"), dataset.get("AcquisitionTime")
            if isinstance(date, datetime.date) and isinstance(time, datetime.time):
                contribution_datetime = datetime.datetime.combine(dataset.AcquisitionDate, dataset.AcquisitionTime)
        values = (manufacturer, dataset.get("ManufacturerModelName"), dataset.get("SoftwareVersions"),
                  dataset.get("DeviceSerialNumber"), dataset.get("InstitutionName"),
                  dataset.get("InstitutionalDepartmentName"), dataset.get("InstitutionAddress"),
                  dataset.get("StationName"))
        key = tuple(_value_key(v) for v in values)
        template = _ACQUISITION_TEMPLATES.get(key)
        if template is None:
            if len(_ACQUISITION_TEMPLATES) >= 64:
                _ACQUISITION_TEMPLATES.clear()
            template = _ACQUISITION_TEMPLATES[key] = _acquisition_template(values)
        # as highdicom sets it (``self.ContributionDateTime = DT(contribution_datetime)``)
        when = None if contribution_datetime is None else \
            _data_element("ContributionDateTime", DT(contribution_datetime)).value
    except Exception:  # noqa: BLE001 -- highdicom leaves the item out on any error
        return None
    return _AcquisitionItem(template, when)


#: :func:`_acquisition_template` by the values it is made of (:func:`_value_key`).
_ACQUISITION_TEMPLATES: dict = {}


def _acquisition_template(values: tuple) -> "_EquipmentParts":
    """highdicom's acquisition-equipment item of these values without ContributionDateTime (raises where
    highdicom raises)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    manufacturer, model, software, serial, institution, department, address, station = values
    return _EquipmentParts(hd.ContributingEquipment(
        manufacturer=manufacturer, purpose_of_reference=codes.DCM.AcquisitionEquipment,
        manufacturer_model_name=model, software_versions=software, device_serial_number=serial,
        institution_name=institution, institutional_department_name=department, institution_address=address,
        station_name=station, contribution_datetime=None,
        contribution_description="Acquisition equipment of the source image(s)",
    ))


class _EquipmentParts:
    """A contributing-equipment item without ContributionDateTime (0018,A002), its elements before and
    after that tag encoded once per character set (read-only)."""

    def __init__(self, item) -> None:
        if 0x0018A002 in item:
            raise RuntimeError("the equipment item already holds a ContributionDateTime")
        self.item = item
        self._parts: dict = {}

    def parts(self, encodings) -> tuple[bytes, bytes]:
        key = None if encodings is None else tuple(encodings)
        if key not in self._parts:
            elements = list(self.item)
            self._parts[key] = (
                b"".join(_encode_element(int(e.tag), e.VR, e.value, encodings) for e in elements if e.tag < 0x0018A002),
                b"".join(_encode_element(int(e.tag), e.VR, e.value, encodings) for e in elements if e.tag > 0x0018A002))
        return self._parts[key]


class _PreEncoded:
    """A sequence item that encodes itself (:func:`_encode_item` asks it)."""

    def encode_item(self, encodings) -> bytes:
        raise NotImplementedError


class _EncodedOnce(_PreEncoded):
    """A data set that does not change (read-only), encoded once per character set."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self._encoded: dict = {}

    def encode_item(self, encodings) -> bytes:
        key = None if encodings is None else tuple(encodings)
        if key not in self._encoded:
            self._encoded[key] = _encode_item(self.dataset, encodings)
        return self._encoded[key]


class _AcquisitionItem(_PreEncoded):
    """An acquisition-equipment item (:func:`_acquisition_item`): its template's elements and the scan's
    ContributionDateTime (None: absent)."""

    def __init__(self, template: _EquipmentParts, contribution_datetime) -> None:
        self.template = template
        self.contribution_datetime = contribution_datetime

    def encode_item(self, encodings) -> bytes:
        before, after = self.template.parts(encodings)
        if self.contribution_datetime is None:
            return before + after
        return before + _encode_element(0x0018A002, "DT", self.contribution_datetime, encodings) + after


_SHARED_ITEMS: dict[int, _EncodedOnce] = {}


def _encoded_once(dataset) -> _EncodedOnce:
    """The :class:`_EncodedOnce` of a read-only data set shared between SEGs (a segment description
    made once per label), by identity (the entry keeps the data set alive, so its id is not reused)."""
    hit = _SHARED_ITEMS.get(id(dataset))
    if hit is None or hit.dataset is not dataset:
        if len(_SHARED_ITEMS) >= 256:
            _SHARED_ITEMS.clear()
        hit = _SHARED_ITEMS[id(dataset)] = _EncodedOnce(dataset)
    return hit


class _HighdicomEquipment(_PreEncoded):
    """``highdicom.ContributingEquipment.for_highdicom()`` made at ``when``: its elements other
    than ContributionDateTime are constants, encoded once (:func:`_highdicom_equipment_parts`)."""

    def __init__(self, when: datetime.datetime) -> None:
        from pydicom.valuerep import DT

        # as highdicom sets it (``self.ContributionDateTime = DT(contribution_datetime)``)
        self.contribution_datetime = _data_element("ContributionDateTime", DT(when)).value

    def encode_item(self, encodings) -> bytes:
        before, after = _highdicom_equipment_parts(None if encodings is None else tuple(encodings))
        return before + _encode_element(0x0018A002, "DT", self.contribution_datetime, encodings) + after


@functools.lru_cache(maxsize=8)
def _highdicom_equipment_parts(encodings: tuple | None) -> tuple[bytes, bytes]:
    """The encoded elements of ``ContributingEquipment.for_highdicom()`` before and after its
    ContributionDateTime (0018,A002)."""
    import highdicom as hd

    item = hd.ContributingEquipment.for_highdicom()
    if 0x0018A002 not in item:
        raise RuntimeError("highdicom's contributing equipment item has no ContributionDateTime")
    enc = None if encodings is None else list(encodings)
    before = b"".join(_encode_element(int(e.tag), e.VR, e.value, enc) for e in item if e.tag < 0x0018A002)
    after = b"".join(_encode_element(int(e.tag), e.VR, e.value, enc) for e in item if e.tag > 0x0018A002)
    return before, after


#: highdicom's PlaneOrientationSequence / PixelMeasuresSequence of a source, by the source values
#: they are made of (:func:`_source_orientation`, :func:`_source_measures`); read-only.
_SOURCE_CONTENT: dict = {}


def _value_key(value) -> tuple:
    """What highdicom's content made from a source value depends on: for each value its type,
    repr, stored string and auto-format flag (pydicom's DS/IS keep the last two)."""
    if _is_multi(value):
        return ("multi", tuple(_value_key(v) for v in value))
    return (type(value).__name__, repr(value), getattr(value, "original_string", None),
            getattr(value, "auto_format", None))


def _remember(key: tuple, content: tuple) -> tuple:
    if len(_SOURCE_CONTENT) >= 256:
        _SOURCE_CONTENT.clear()
    _SOURCE_CONTENT[key] = content
    return content


def _source_orientation(image_orientation) -> tuple[Any, list]:
    """``highdicom.PlaneOrientationSequence(coordinate_system="PATIENT", image_orientation=...)`` of a
    source's ImageOrientationPatient (made once per value; read-only), and its items encoded once."""
    import highdicom as hd

    key = ("orientation", _value_key(image_orientation))
    cached = _SOURCE_CONTENT.get(key)
    if cached is None:
        content = hd.PlaneOrientationSequence(coordinate_system="PATIENT", image_orientation=image_orientation)
        cached = _remember(key, (content, [_EncodedOnce(item) for item in content]))
    return cached


def _source_measures(pixel_spacing, slice_thickness, spacing_between_slices) -> tuple[Any, list | None]:
    """``highdicom.PixelMeasuresSequence`` of a source's values and its items encoded once; made once
    per values (read-only) when it holds SpacingBetweenSlices, else made anew with None for the items
    (the caller adds the spacing of its planes to it)."""
    import highdicom as hd

    key = ("measures", _value_key(pixel_spacing), _value_key(slice_thickness), _value_key(spacing_between_slices))
    cached = _SOURCE_CONTENT.get(key)
    if cached is None:
        content = hd.PixelMeasuresSequence(pixel_spacing=pixel_spacing, slice_thickness=slice_thickness,
                                           spacing_between_slices=spacing_between_slices)
        if "SpacingBetweenSlices" not in content[0]:
            return content, None
        cached = _remember(key, (content, [_EncodedOnce(item) for item in content]))
    return cached


def _memo_for(memo: dict | None, src) -> dict:
    """``memo`` (a new dict when None) holding values of the header ``src`` alone: emptied
    when it held another header's."""
    if memo is None:
        return {}
    if memo.get("source") is not src:
        memo.clear()
        memo["source"] = src
    return memo


def _copied_elements(src, sop_class_uid: str, memo: dict) -> list[tuple[int, str, Any]] | None:
    """``(tag, VR, value)`` of the root attributes highdicom copies from ``src`` (present in it, in
    :func:`_copied_tags` order), or None when one has an ambiguous VR; kept in ``memo``."""
    key = ("copied", sop_class_uid)
    if key not in memo:
        present = src.keys()  # the data set's tags: ``tag in src`` without converting each tag
        copied: list | None = []
        for tag in _copied_tags(sop_class_uid):
            if tag in present:
                elem = src[tag]
                if len(elem.VR) != 2:
                    copied = None
                    break
                copied.append((int(elem.tag), elem.VR, elem.value))
        memo[key] = copied
    return memo[key]


# ----------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class SourceRef:
    """What the SEG needs of one source image: UIDs and the stored position/orientation strings."""

    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str | None
    rows: int
    cols: int
    position: tuple[str, str, str]
    orientation: tuple[float, ...]


def _strings(value: Any) -> list[str]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        value = [value]
    out = []
    for v in value:
        s = getattr(v, "original_string", None)
        out.append(str(s if s is not None else v).strip())
    return out


def source_ref(ds) -> SourceRef | None:
    """The :class:`SourceRef` of a single-frame source header (pydicom data set or
    :class:`~volumetry.io.seg.LightHeader`), or None when the fast path does not apply to it."""
    if type(ds) is LightHeader and ds._raw is None and "ImagePositionPatient" in ds._strings:
        return _light_source_ref(ds._cache, ds._strings["ImagePositionPatient"])
    try:
        if "PerFrameFunctionalGroupsSequence" in ds or int(ds.get("NumberOfFrames", 1) or 1) != 1:
            return None
        sop_class = str(ds.SOPClassUID)
        if sop_class not in FAST_SOP_CLASSES:
            return None
        pos = [_ds_string(v) for v in (ds.raw_strings("ImagePositionPatient") if hasattr(ds, "raw_strings")
                                       else _strings(ds.ImagePositionPatient))]
        ori = tuple(float(v) for v in ds.ImageOrientationPatient)
        if len(pos) != 3 or len(ori) != 6:
            return None
        for_uid = ds.get("FrameOfReferenceUID")
        return SourceRef(sop_class, str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID), str(ds.StudyInstanceUID),
                         None if for_uid is None else str(for_uid), int(ds.Rows), int(ds.Columns),
                         tuple(pos), ori)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _light_source_ref(values: dict, position: tuple[str, ...]) -> SourceRef | None:
    """:func:`source_ref` of a light header read with its values decoded (``values``: keyword -> value,
    _MISSING when absent; ``position``: the stored ImagePositionPatient strings): the same checks and
    values, read from the dict."""
    try:
        n_frames = values["NumberOfFrames"]
        if int((1 if n_frames is _MISSING else n_frames) or 1) != 1:
            return None
        wanted = [values[k] for k in ("SOPClassUID", "ImageOrientationPatient", "SOPInstanceUID", "SeriesInstanceUID",
                                      "StudyInstanceUID", "Rows", "Columns")]
        if any(v is _MISSING for v in wanted):
            return None  # an attribute the data set lacks (AttributeError)
        sop_class, orientation, sop_instance, series, study, rows, cols = wanted
        sop_class = str(sop_class)
        if sop_class not in FAST_SOP_CLASSES:
            return None
        pos = [_ds_string(v) for v in position]
        ori = tuple(float(v) for v in orientation)
        if len(pos) != 3 or len(ori) != 6:
            return None
        for_uid = values["FrameOfReferenceUID"]
        for_uid = None if for_uid is _MISSING else for_uid
        return SourceRef(sop_class, str(sop_instance), str(series), str(study),
                         None if for_uid is None else str(for_uid), int(rows), int(cols), tuple(pos), ori)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- the data set
@dataclass
class FastSeg:
    """A SEG ready to encode: top-level data set + the bulk parts' inputs."""

    top: Any
    sources: list[SourceRef]
    frame_sources: list[list[int]]  # per written frame (sorted), the matched source indices
    frame_positions: list[tuple[str, str, str]]
    pixel_bytes: bytes
    sop_instance_uid: str
    #: the parts shared with the other SEGs of the same source header and planes (:class:`_Shared`), whose
    #: encoded bytes :func:`encode` keeps; None: every part is encoded for this SEG
    shared: Any = None


class _SourceHead:
    """What :func:`plan` reads from the first source header before placing the planes (checked once
    per header, kept in the memo): patient values, lossy flag, highdicom's orientation and pixel
    measures made of its values."""

    def __init__(self, sex, patient_values: tuple, lossy, orientation: tuple, measures: tuple) -> None:
        self.sex = sex
        self.patient_values = patient_values
        self.lossy = lossy
        self.source_orientation, self.orientation_items = orientation
        self.source_measures, self.measures_items = measures
        #: the pixel measures made for the first SEG (``measures_items`` None) were taken by its planes
        self.measures_taken = False


def _source_head(src, memo: dict) -> _SourceHead | None:
    """The :class:`_SourceHead` of ``src`` (kept in ``memo``), or None when the fast path does not
    apply to it (a value highdicom would reject or transform)."""
    if "head" in memo:
        return memo["head"]
    from pydicom.valuerep import DA

    head = None
    try:
        sex = src.PatientSex
        if sex not in (None, "") and str(sex) not in ("M", "F", "O"):
            memo["head"] = None
            return None
        patient_values = (src.PatientID, src.PatientName, DA(src.PatientBirthDate), src.AccessionNumber,
                          src.StudyID, src.StudyDate, src.StudyTime, src.Modality, src.SliceThickness,
                          src.PixelSpacing, src.ImageOrientationPatient)
        lossy = getattr(src, "LossyImageCompression", "00")
    except (AttributeError, ValueError, TypeError):
        memo["head"] = None
        return None
    if not (lossy == "01" or not str(src.Modality).replace("_", "").isalnum()):
        head = _SourceHead(sex, patient_values, lossy, _source_orientation(src.ImageOrientationPatient),
                           _source_measures(src.PixelSpacing, src.SliceThickness,
                                            src.get("SpacingBetweenSlices", None)))
    memo["head"] = head
    return head


class _Planes:
    """Where the planes of a SEG sit among its sources (:func:`_planes`): the same for every SEG of one
    source header, sources and planes (the lesions of one series); read-only but for what it makes
    on first use (the pixel measures and dimension organisation of its planes, the encoded
    references and per-frame items)."""

    def __init__(self, plane_values: np.ndarray, sort_index: np.ndarray, frame_sources: list, frame_positions: list):
        self.plane_values = plane_values
        self.sort_index = sort_index
        self.frame_sources = frame_sources
        self.frame_positions = frame_positions
        self._measures: list | None = None
        self._is_3d: bool | None = None
        #: encoded (ReferencedSeriesSequence, SourceImageSequence, PerFrameFunctionalGroupsSequence), by the
        #: sources' (SOP class, SOP instance, series) UIDs (the pseudonymised SEGs' are the mapped ones)
        self.bulk: dict = {}

    def measures_items(self, src, head: _SourceHead) -> list:
        """The SEG's PixelMeasuresSequence items: the source's when they hold SpacingBetweenSlices, else
        made of its values with the spacing of these planes added (as highdicom does), made once."""
        if head.measures_items is not None:
            return head.measures_items
        if self._measures is None:
            from pydicom.valuerep import format_number_as_ds

            if head.measures_taken:
                content, _ = _source_measures(src.PixelSpacing, src.SliceThickness,
                                              src.get("SpacingBetweenSlices", None))
            else:  # the content made (by the same call) when the header was read: its PixelSpacing stays
                content, head.measures_taken = head.source_measures, True
            slice_spacing = _volume_spacing(self.plane_values, head.source_orientation[0].ImageOrientationPatient,
                                            sort=True)
            if slice_spacing is not None:
                content[0].SpacingBetweenSlices = format_number_as_ds(slice_spacing)
            self._measures = [_EncodedOnce(item) for item in content]
        return self._measures

    def is_3d(self, head: _SourceHead) -> bool:
        """True when highdicom's DimensionOrganizationType of these planes is "3D" (evenly spaced)."""
        if self._is_3d is None:
            self._is_3d = False
            if len(self.plane_values) > 1:
                spacing = _volume_spacing(self.plane_values, head.source_orientation[0].ImageOrientationPatient,
                                          sort=False)
                self._is_3d = spacing is not None and spacing > 0.0
        return self._is_3d


def _normal_vector(image_orientation) -> np.ndarray:
    """``highdicom.spatial.get_normal_vector(image_orientation, index_convention=VOLUME_INDEX_CONVENTION)``
    (right-handed, highdicom's volume convention: column cosines × row cosines), made once per
    orientation values (read-only)."""
    return _normal_of(tuple(float(v) for v in image_orientation))


@functools.lru_cache(maxsize=64)
def _normal_of(values: tuple[float, ...]) -> np.ndarray:
    from highdicom.spatial import VOLUME_INDEX_CONVENTION, get_normal_vector

    normal = get_normal_vector(values, index_convention=VOLUME_INDEX_CONVENTION)
    normal.setflags(write=False)
    return normal


def _volume_spacing(positions: np.ndarray, image_orientation, *, sort: bool):
    """The slice spacing (mm) of ``highdicom.spatial.get_volume_positions(image_positions=positions,
    image_orientation=image_orientation, sort=sort)`` (default tolerances), or None where it finds
    no volume: the same numpy operations on the same arrays, without its argument checks, its
    normal's index-convention look-ups and ``np.unique(..., axis=0)`` (the rows sorted by
    ``np.lexsort`` instead: the same order when no two rows are equal, and equal rows are its
    duplicates, which it refuses). Rows that are not all finite go to highdicom itself."""
    from highdicom.spatial import _DEFAULT_PERPENDICULAR_TOLERANCE, _DEFAULT_SPACING_RELATIVE_TOLERANCE

    positions = np.array(positions)
    n = positions.shape[0]
    if positions.ndim != 2 or positions.shape[1] != 3 or n < 2 or not np.isfinite(positions).all():
        from highdicom.spatial import get_volume_positions

        return get_volume_positions(image_positions=positions, image_orientation=image_orientation, sort=sort)[0]
    normal_vector = _normal_vector(image_orientation)
    unique_positions = positions[np.lexsort(positions.T[::-1])]  # np.unique's rows, when they are unique
    if (unique_positions[1:] == unique_positions[:-1]).all(axis=1).any():
        return None  # duplicate positions: not a volume
    origin_distances = (normal_vector[None] @ unique_positions.T).squeeze(0)  # highdicom's _get_slice_distances
    if sort:
        sort_index = np.argsort(origin_distances)
        origin_distances_sorted = origin_distances[sort_index]
    else:
        sort_index = np.arange(unique_positions.shape[0])
        origin_distances_sorted = origin_distances
    spacings = np.diff(origin_distances_sorted)
    spacing = (origin_distances_sorted[-1] - origin_distances_sorted[0]) / (len(origin_distances_sorted) - 1)
    is_regular = np.isclose(spacings, spacing, rtol=_DEFAULT_SPACING_RELATIVE_TOLERANCE, atol=0.0).all()
    spans = unique_positions[sort_index[1:]] - unique_positions[sort_index[0]]
    spans /= np.linalg.norm(spans, axis=1)[:, None]
    dot_products = spans @ normal_vector
    is_perpendicular = np.all(np.logical_or(np.abs(dot_products - 1.0) < _DEFAULT_PERPENDICULAR_TOLERANCE,
                                            np.abs(dot_products + 1.0) < _DEFAULT_PERPENDICULAR_TOLERANCE))
    return abs(spacing) if is_regular and is_perpendicular else None


def _nearest_sources(distances: np.ndarray, min_d: np.ndarray) -> list[list]:
    """Per row ``i`` of ``distances`` (planes × sources, mm), the sources at its smallest distance
    ``min_d[i]``: ``list(np.nonzero(distances[i] == min_d[i])[0])`` of every row (numpy integers in
    ascending order), from one comparison and one ``np.nonzero`` of the whole matrix."""
    hits = distances == min_d[:, None]
    columns = list(np.nonzero(hits)[1])  # row by row, each row's columns ascending
    ends = np.cumsum(np.count_nonzero(hits, axis=1)).tolist()
    return [columns[start:end] for start, end in zip([0, *ends[:-1]], ends)]


def _planes(head: _SourceHead, refs: list, positions, orientation, pixel_spacing, memo: dict) -> _Planes | None:
    """The :class:`_Planes` of ``positions`` among ``refs`` (kept in ``memo`` by the plane values, the
    orientation and pixel spacing given and the sources), or None when highdicom would not keep the
    source's orientation and pixel measures or a plane is not on a source image."""
    from highdicom.spatial import _are_orientations_equal, _get_slice_distances

    orientation_values = tuple(float(v) for v in orientation)
    spacing_values = [float(v) for v in pixel_spacing]
    # plane position values: the floats given to highdicom (DS(float, auto_format) keeps the float)
    plane_values = np.array([[float(v) for v in p] for p in positions])
    key = ("planes", orientation_values, tuple(spacing_values), plane_values.shape, plane_values.tobytes())
    refs_key = tuple(refs)
    hit = memo.get(key)
    if hit is not None and hit[0] == refs_key:
        return hit[1]
    found = None
    # highdicom keeps the source's orientation and pixel measures when ours equal them
    if _are_orientations_equal(orientation_values, head.source_orientation.cosines) and \
            np.allclose(spacing_values, head.source_measures[0].PixelSpacing, rtol=1e-4):
        src_positions = np.array([[float(v) for v in r.position] for r in refs])
        distances = np.linalg.norm(plane_values[:, None, :] - src_positions, axis=-1)
        min_d = distances.min(axis=1)
        if np.all(min_d < _SPATIAL_MATCH_MM):
            n_planes = len(plane_values)
            matched = _nearest_sources(distances, min_d)
            normal = _normal_vector(head.source_orientation[0].ImageOrientationPatient)
            _, sort_index = np.unique(_get_slice_distances(plane_values, normal), return_index=True)
            if len(sort_index) == n_planes:
                frame_sources = [matched[i] for i in sort_index]
                found = _Planes(plane_values, sort_index, frame_sources, [refs[m[0]].position for m in frame_sources])
    memo[key] = (refs_key, found)
    return found


#: Top-level attributes :func:`plan` sets from its own arguments (or per SEG): none is copied from the
#: source (``tests/test_seg_write_cache_equality.py`` checks it), so the attributes that are
#: (:func:`_base_top`) can be set before them and keep the values they would have had after.
_PER_SEG_KEYWORDS = (
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Manufacturer", "ManufacturerModelName",
    "DeviceSerialNumber", "SoftwareVersions", "SOPInstanceUID", "InstanceCreationDate", "InstanceCreationTime",
    "ContentDate", "ContentTime", "ContributingEquipmentSequence", "SegmentSequence", "Rows", "Columns",
    "DimensionIndexSequence", "SharedFunctionalGroupsSequence", "DimensionOrganizationSequence",
    "DimensionOrganizationType", "NumberOfFrames",
)


def _base_top(src, sop_class_uid: str, head: _SourceHead, memo: dict) -> _Top | None:
    """The top-level attributes of a SEG of ``src`` that do not depend on :func:`plan`'s other
    arguments (from the source header, or constant), as highdicom sets them (made once, kept in
    ``memo``; read-only), or None when one copied attribute has an ambiguous VR."""
    key = ("base", sop_class_uid)
    if key in memo:
        return memo[key]
    from highdicom.valuerep import _check_specific_character_set
    from pydicom.valuerep import DA, TM

    patient_values = head.patient_values
    top = _Top()
    # highdicom.base.SOPClass
    top.PatientID = patient_values[0]
    top.PatientName = patient_values[1]
    top.PatientBirthDate = patient_values[2]
    top.PatientSex = head.sex
    top.StudyInstanceUID = str(src.StudyInstanceUID)
    top.AccessionNumber = patient_values[3]
    top.StudyID = patient_values[4]
    top.StudyDate = DA(patient_values[5]) if patient_values[5] is not None else None
    top.StudyTime = TM(patient_values[6]) if patient_values[6] is not None else None
    top.ReferringPhysicianName = getattr(src, "ReferringPhysicianName", None)
    top.Modality = "SEG"
    top.SOPClassUID = SEG_SOP_CLASS
    top.InstanceNumber = 1
    charset = src.get("SpecificCharacterSet")
    if charset is not None:
        top.SpecificCharacterSet = _check_specific_character_set(charset)
    # copy_specimen_information, copy_patient_and_study_information
    copied = _copied_elements(src, sop_class_uid, memo)
    if copied is None:
        memo[key] = None
        return None  # an ambiguous VR: pydicom's writer resolves it in the highdicom path
    for tag, vr, value in copied:
        top[tag] = (vr, value)
    # Segmentation
    top.SegmentationType = "BINARY"
    top.ContentLabel = f"{src.Modality}_SEG"
    top.ContentDescription = None
    # _init_multiframe_image
    top.FrameOfReferenceUID = src.FrameOfReferenceUID
    top.PositionReferenceIndicator = getattr(src, "PositionReferenceIndicator", None)
    top.BitsAllocated = 1
    top.SamplesPerPixel = 1
    top.PhotometricInterpretation = "MONOCHROME2"
    top.BitsStored = 1
    top.HighBit = 0
    top.PixelRepresentation = 0
    top.ImageType = ["DERIVED", "PRIMARY"]
    top.PresentationLUTShape = "IDENTITY"
    top.LossyImageCompression = head.lossy
    top.SegmentsOverlap = "NO"
    memo[key] = top
    return top


class _Shared:
    """What a :class:`FastSeg` shares with the other SEGs of its source header and planes: the
    attributes of :func:`_base_top` with their encoded bytes (per character set), and the
    :class:`_Planes` with its encoded references and per-frame items."""

    def __init__(self, base: _Top, planes: _Planes, encoded: dict) -> None:
        self.base = base
        self.planes = planes
        #: character set (encodings) -> {tag: bytes} of base's elements (kept with ``base`` in the memo)
        self.encoded = encoded


@functools.lru_cache(maxsize=1)
def _bulk_tag_set() -> frozenset[int]:
    return frozenset(_BULK_TAGS)


@functools.lru_cache(maxsize=256)
def _settable(keyword: str) -> bool:
    """True when an override of ``keyword`` is an attribute the fast path sets (not a bulk one)."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    return tag is not None and tag not in _bulk_tag_set()


def _override_element(keyword: str, value: Any) -> tuple[int, tuple[str, Any]]:
    """``(tag, (VR, value))`` of the element pydicom's ``setattr(dataset, keyword, value)`` makes; the
    conversion of a plain string is made once per keyword and string (read-only)."""
    if type(value) is str:
        return _override_string(keyword, value)
    elem = _data_element(keyword, value)
    return int(elem.tag), (elem.VR, elem.value)


@functools.lru_cache(maxsize=1024)
def _override_string(keyword: str, value: str) -> tuple[int, tuple[str, Any]]:
    elem = _data_element(keyword, value)
    return int(elem.tag), (elem.VR, elem.value)


def _refs_agree(refs: list, memo: dict) -> bool:
    """True when every source has a :class:`SourceRef`, a frame of reference, and the study, series,
    matrix size, frame of reference and orientation of the first (decided once per sources)."""
    refs_key = tuple(refs)
    hit = memo.get("refs")
    if hit is not None and hit[0] == refs_key:
        return hit[1]
    ok = not any(r is None for r in refs)
    if ok:
        first = refs[0]
        ok = first.frame_of_reference_uid is not None and \
            len({(r.study_uid, r.series_uid, r.rows, r.cols, r.frame_of_reference_uid) for r in refs}) == 1 and \
            not any(r.orientation != first.orientation for r in refs)  # highdicom refuses sources without one
    memo["refs"] = (refs_key, ok)
    return ok


def plan(datasets: Sequence[Any], pixel_array: np.ndarray, positions: Sequence[np.ndarray], *,
         orientation: Sequence[float], pixel_spacing: Sequence[float], description, series_uid: str, sop_uid: str, series_number: int, series_description: str | None,
         manufacturer: str, model_name: str, software_versions: str, device_serial_number: str,
         overrides: Mapping[str, Any] | None, now: datetime.datetime | None = None,
         refs: Sequence[SourceRef | None] | None = None, memo: dict | None = None) -> FastSeg | None:
    """Build the SEG data set highdicom would build, or None when the fast path does not apply.

    Parameters
    ----------
    datasets : sequence
        Source headers in the order given to highdicom; the first one is a full pydicom
        data set (its patient/study modules are copied), the others may be light headers.
    pixel_array : numpy.ndarray
        ``(frames, rows, columns)`` 0/1 planes in the order of ``positions``.
    positions : sequence of numpy.ndarray
        ImagePositionPatient (LPS mm) of each plane, as given to highdicom.
    orientation : sequence of float
        ImageOrientationPatient given to highdicom (row then column cosines).
    pixel_spacing : sequence of float
        PixelSpacing given to highdicom (mm, between rows then columns).
    description : highdicom.seg.SegmentDescription
    series_uid, sop_uid, series_number, series_description, manufacturer, model_name,
    software_versions, device_serial_number
        As given to ``highdicom.seg.Segmentation``.
    overrides : mapping or None
        Keywords set on the data set after it is built.
    now : datetime, optional
        Creation time (default: now).
    refs : sequence of SourceRef, optional
        :func:`source_ref` of ``datasets`` when already computed.
    memo : dict, optional
        What is derived from the first source header (checks, the attributes copied from it, its
        acquisition equipment, the placing of the planes among the sources and their encoded
        references), kept for the next SEG of the same header (several lesions of one series:
        :class:`volumetry.io.seg.SegSources` keeps one); emptied when the header is another. The
        source headers are read-only meanwhile.

    Returns
    -------
    FastSeg or None
    """
    import highdicom as hd
    from pydicom.valuerep import DA, TM

    src = datasets[0]
    for kw in overrides or {}:
        if not _settable(kw):
            return None
    memo = _memo_for(memo, src)
    refs = list(refs) if refs is not None else [source_ref(ds) for ds in datasets]
    if not _refs_agree(refs, memo):
        return None
    first = refs[0]
    n_planes, rows, cols = pixel_array.shape
    if (rows, cols) != (first.rows, first.cols) or n_planes != len(positions) or n_planes == 0:
        return None
    head = _source_head(src, memo)
    if head is None:
        return None
    # --- geometry as highdicom derives it (spatial locations preserved, source values copied)
    planes = _planes(head, refs, positions, orientation, pixel_spacing, memo)
    if planes is None:
        return None
    base = _base_top(src, first.sop_class_uid, head, memo)
    if base is None:
        return None

    now = now or datetime.datetime.now()
    top = _Top(base)
    # highdicom.base.SOPClass
    top.SeriesInstanceUID = str(series_uid)
    top.SeriesNumber = int(series_number)
    if series_description is not None:
        top.SeriesDescription = series_description
    top.Manufacturer = manufacturer
    top.ManufacturerModelName = model_name
    top.DeviceSerialNumber = device_serial_number
    top.SoftwareVersions = software_versions
    top.SOPInstanceUID = str(sop_uid)
    top.InstanceCreationDate = DA(now.date())
    top.InstanceCreationTime = TM(now.time())
    top.ContentDate = DA(now.date())
    top.ContentTime = TM(now.time())
    # contributing equipment (left out: an override replaces it)
    if "ContributingEquipmentSequence" not in (overrides or {}):
        equipment = []
        if "acquisition" not in memo:
            memo["acquisition"] = _acquisition_item(src)
        if memo["acquisition"] is not None:
            equipment.append(memo["acquisition"])
        equipment.append(_HighdicomEquipment(datetime.datetime.now()))  # ContributingEquipment.for_highdicom()
        top.ContributingEquipmentSequence = equipment
    # Segmentation
    top.SegmentSequence = [_encoded_once(description)]  # the lesion's description, shared (read-only)
    # _init_multiframe_image
    top.Rows = rows
    top.Columns = cols
    dim_uid = hd.UID()
    dim_items = []
    for pointer, group, label in ((0x0062000B, 0x0062000A, "Referenced Segment Number"),
                                  (0x00200032, 0x00209113, "Image Position Patient")):
        item = _Top()
        item.DimensionOrganizationUID = dim_uid
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = group
        item.DimensionDescriptionLabel = label
        dim_items.append(item)
    top.DimensionIndexSequence = dim_items
    shared = _Top()
    shared.PlaneOrientationSequence = head.orientation_items
    shared.PixelMeasuresSequence = planes.measures_items(src, head)
    ident = _Top()
    ident.ReferencedSegmentNumber = 1
    shared.SegmentIdentificationSequence = [ident]
    top.SharedFunctionalGroupsSequence = [shared]
    org = _Top()
    org.DimensionOrganizationUID = dim_uid
    top.DimensionOrganizationSequence = [org]
    if planes.is_3d(head):
        top.DimensionOrganizationType = "3D"
    top.NumberOfFrames = n_planes
    for keyword, value in (overrides or {}).items():
        tag, entry = _override_element(keyword, value)
        top[tag] = entry

    pixel_bytes = _pixel_bytes(pixel_array, planes.sort_index)
    return FastSeg(top, refs, planes.frame_sources, planes.frame_positions, pixel_bytes, str(sop_uid),
                   _Shared(base, planes, memo.setdefault(("encoded", first.sop_class_uid), {})))


def _pixel_bytes(pixel_array: np.ndarray, sort_index: np.ndarray) -> bytes:
    """The SEG's PixelData: the planes in ``sort_index`` order, one bit per pixel (nonzero: 1), little
    bit order, padded as highdicom pads an odd length (with the character "0")."""
    if pixel_array.dtype == np.uint8 or pixel_array.dtype == np.bool_:  # packbits packs ``value != 0``
        in_order = len(sort_index) == len(pixel_array) and bool(np.all(sort_index == np.arange(len(sort_index))))
        planes = pixel_array if in_order else pixel_array[sort_index]
        pixel_bytes = np.packbits(planes.reshape(-1), bitorder="little").tobytes()
    else:
        planes = np.ascontiguousarray(pixel_array[sort_index], dtype=np.uint8)
        pixel_bytes = np.packbits(planes.ravel() != 0, bitorder="little").tobytes()
    if len(pixel_bytes) % 2:
        pixel_bytes += b"0"  # highdicom pads an odd length with the character "0"
    return pixel_bytes


def encode(seg: FastSeg, uid_mapping: Mapping[str, str] | None = None) -> bytes | None:
    """The Part-10 file bytes (explicit VR little endian) of a :class:`FastSeg`.

    ``uid_mapping`` (pseudonymised SEGs): every UI element whose value (or one of whose values)
    is a key is written with the mapped UID(s), nested sequences and the references included:
    the bytes :func:`volumetry.io.seg.map_source_uids` and pydicom's writer make of the SEG
    read back (the file meta, the SEG's own UIDs, are left). None when a key still appears in
    the bytes (a UID inside an item encoded once and shared, or in a text value; never in a
    volumetry SEG of MR/CT sources): the caller then maps the data set read back.
    """
    if uid_mapping:
        data = _encode(_mapped_seg(seg, uid_mapping))
        for key in uid_mapping:
            try:
                found = key.encode("ascii") in data
            except UnicodeEncodeError:
                found = True
            if found:
                return None
        return data
    return _encode(seg)


def _mapped_uid_value(value: Any, mapping: Mapping[str, str]) -> Any:
    """A UI value as :func:`volumetry.io.seg.map_source_uids` leaves it (the value itself when unmapped)."""
    if value is None:
        return value
    if isinstance(value, str):
        return mapping[value] if value in mapping else value
    if _is_multi(value) and any(str(v) in mapping for v in value):
        return [mapping.get(str(v), str(v)) for v in value]
    return value


def _mapped_value(vr: str, value: Any, mapping: Mapping[str, str]) -> Any:
    """``value`` of an element of VR ``vr`` with its source UIDs mapped (sequences item by item)."""
    if vr == "UI":
        return _mapped_uid_value(value, mapping)
    if vr == "SQ" and value is not None and not isinstance(value, (str, bytes)):  # a list or a pydicom Sequence
        return [_mapped_item(item, mapping) for item in value]
    return value


def _mapped_item(item: Any, mapping: Mapping[str, str]) -> Any:
    """A sequence item with its source UIDs mapped; an item encoded once (:class:`_PreEncoded`)
    is kept as it is (:func:`encode` checks the bytes)."""
    if isinstance(item, _PreEncoded):
        return item
    out = _Top()
    if isinstance(item, dict):
        for tag, (vr, value) in item.items():
            out[tag] = (vr, _mapped_value(vr, value, mapping))
        return out
    for elem in item:  # a pydicom data set (copied from the source): encoded in tag order, as the dict
        out[int(elem.tag)] = (elem.VR, _mapped_value(elem.VR, elem.value, mapping))
    return out


def _mapped_seg(seg: FastSeg, mapping: Mapping[str, str]) -> FastSeg:
    """A copy of ``seg`` whose data set and references hold the mapped UIDs (see :func:`encode`)."""
    import dataclasses

    top = _Top()
    for tag, entry in seg.top.items():
        mapped = _mapped_value(entry[0], entry[1], mapping)
        top[tag] = entry if mapped is entry[1] else (entry[0], mapped)  # unchanged: its encoded bytes are kept
    sources = [dataclasses.replace(r, sop_class_uid=mapping.get(r.sop_class_uid, r.sop_class_uid),
                                   sop_instance_uid=mapping.get(r.sop_instance_uid, r.sop_instance_uid),
                                   series_uid=mapping.get(r.series_uid, r.series_uid),
                                   study_uid=mapping.get(r.study_uid, r.study_uid)) for r in seg.sources]
    return dataclasses.replace(seg, top=top, sources=sources)


def _encode(seg: FastSeg) -> bytes:
    """:func:`encode` without UID mapping."""
    from highdicom.version import __version__ as hd_version
    from pydicom.charset import convert_encodings
    from pydicom.filebase import DicomBytesIO

    top = seg.top
    # file meta information (group 2) as highdicom sets it and pydicom writes it
    meta = b"".join((
        _el(0x00020001, "OB", b"\x00\x01"),
        _el(0x00020002, "UI", _text(SEG_SOP_CLASS, b"\0")),
        _el(0x00020003, "UI", _text(seg.sop_instance_uid, b"\0")),
        _el(0x00020010, "UI", _text(_EXPLICIT_LE, b"\0")),
        _el(0x00020012, "UI", _text("1.2.826.0.1.3680043.9.7433.1.1", b"\0")),  # highdicom's
        _el(0x00020013, "SH", _text(f"highdicom{hd_version}")),
    ))
    fp = DicomBytesIO()
    fp.write(b"\0" * 128 + b"DICM" + _el(0x00020000, "UL", _u32(len(meta))) + meta)

    charset = top.get(0x00080005, (None, None))[1]
    encodings = convert_encodings(charset or "ISO_IR 6")
    bulk = dict(zip((0x00081115, 0x00082112, 0x52009230), _references(seg)))
    bulk[0x7FE00010] = _el(0x7FE00010, "OB", seg.pixel_bytes)
    parts = _top_elements(seg, encodings)
    parts += bulk.items()
    parts.sort(key=lambda p: p[0])
    fp.write(b"".join(p[1] for p in parts))
    return fp.getvalue()


def _top_elements(seg: FastSeg, encodings) -> list[tuple[int, bytes]]:
    """``(tag, encoded element)`` of every attribute of ``seg.top``; those it shares unchanged with
    the other SEGs of its source header (:class:`_Shared`) are encoded once per character set, and
    so are plain strings and integers (:func:`_plain_element`)."""
    top = seg.top
    shared = seg.shared
    enc_key = tuple(encodings)
    if shared is None:
        return [(tag, _plain_element(tag, vr, value, encodings, enc_key)) for tag, (vr, value) in top.items()]
    base = shared.base
    done = shared.encoded.setdefault(enc_key, {})
    parts = []
    for tag, entry in top.items():
        if base.get(tag) is entry:
            data = done.get(tag)
            if data is None:
                data = done[tag] = _plain_element(tag, entry[0], entry[1], encodings, enc_key)
        else:
            data = _plain_element(tag, entry[0], entry[1], encodings, enc_key)
        parts.append((tag, data))
    return parts


#: Encoded elements of plain values (:func:`_plain_element`), by (tag, VR, type, value, encodings).
_PLAIN_ELEMENTS: dict = {}


def _plain_element(tag: int, vr: str, value: Any, encodings, enc_key: tuple) -> bytes:
    """:func:`_encode_element` of one element, kept when its value is a plain ``str`` or ``int`` (not a
    UID: those are new in every SEG): the same bytes for the same tag, VR, value and character set
    (constants, the source's study values, the overrides), encoded once per process."""
    kind = type(value)
    if (kind is not str and kind is not int) or vr == "UI":
        return _encode_element(tag, vr, value, encodings)
    key = (tag, vr, kind, value, enc_key)
    data = _PLAIN_ELEMENTS.get(key)
    if data is None:
        if len(_PLAIN_ELEMENTS) >= 4096:
            _PLAIN_ELEMENTS.clear()
        data = _PLAIN_ELEMENTS[key] = _encode_element(tag, vr, value, encodings)
    return data


def _references(seg: FastSeg) -> tuple[bytes, bytes, bytes]:
    """The encoded ReferencedSeriesSequence, SourceImageSequence and PerFrameFunctionalGroupsSequence
    of ``seg``; made once per planes and source UIDs (:class:`_Planes`) when ``seg`` shares them."""
    planes = None if seg.shared is None else seg.shared.planes
    key = None
    if planes is not None and seg.frame_sources is planes.frame_sources and \
            seg.frame_positions is planes.frame_positions:
        key = tuple((r.sop_class_uid, r.sop_instance_uid, r.series_uid) for r in seg.sources)
        hit = planes.bulk.get(key)
        if hit is not None:
            return hit
    purpose = _encoded_dataset("purpose")
    derivation = _encoded_dataset("derivation")
    ref_items = [_el(0x00081150, "UI", _text(r.sop_class_uid, b"\0")) +
                 _el(0x00081155, "UI", _text(r.sop_instance_uid, b"\0")) for r in seg.sources]
    by_series: dict[str, list[bytes]] = {}
    for r, item in zip(seg.sources, ref_items):
        by_series.setdefault(r.series_uid, []).append(item)
    made = (_sq(0x00081115, [_sq(0x0008114A, items) + _el(0x0020000E, "UI", _text(uid, b"\0"))
                             for uid, items in by_series.items()]),
            _sq(0x00082112, ref_items),
            _sq(0x52009230, _frame_items(seg, ref_items, purpose, derivation)))
    if key is not None:
        if len(planes.bulk) >= 8:
            planes.bulk.clear()
        planes.bulk[key] = made
    return made


def _frame_items(seg: FastSeg, ref_items: list[bytes], purpose: bytes, derivation: bytes) -> list[bytes]:
    purpose_sq = _sq(0x0040A170, [purpose])
    src_items = [item + _el(0x0028135A, "CS", b"YES ") + purpose_sq for item in ref_items]
    derivation_sq = _sq(0x00089215, [derivation])
    # FrameContentSequence: one item holding DimensionIndexValues (1, n): fixed lengths, so the
    # bytes before the two numbers are the same for every frame
    content_head = _sq(0x00209111, [_el(0x00209157, "UL", b"\0" * 8)])[:-8]
    derivations: dict[int, bytes] = {}  # a frame made from one source image: its derivation item
    out = []
    for n, (matched, pos) in enumerate(zip(seg.frame_sources, seg.frame_positions), start=1):
        if len(matched) == 1:
            m = int(matched[0])
            der = derivations.get(m)
            if der is None:
                der = derivations[m] = _sq(0x00089124, [_sq(0x00082112, [src_items[m]]) + derivation_sq])
        else:
            der = _sq(0x00089124, [_sq(0x00082112, [src_items[m] for m in matched]) + derivation_sq])
        position = _sq(0x00209113, [_el(0x00200032, "DS", _text("\\".join(pos)))])
        out.append(der + content_head + _u32(1) + _u32(n) + position)
    return out


# ----------------------------------------------------------------------------- light headers
_MISSING = object()


class LightHeader:
    """Top-level attributes of a classic single-frame header, parsed by
    :mod:`volumetry.io.dicom_rawheader` (sequences skipped), with the small part of
    pydicom's ``Dataset`` interface that :mod:`volumetry.io.seg` uses on a source image
    that is not the first one (whose modules are copied, so it is read by pydicom).

    Made by :func:`read_light_header` either from a whole raw header (``raw``), or from the
    values of :data:`_LIGHT_KEYWORDS` alone (``values``, decoded when the file was read, and
    ``strings``, the stored text of the position); the raw header of such a one is parsed from
    the file only if another attribute is asked for.
    """

    def __init__(self, raw, path: str, values: dict | None = None, strings: dict | None = None) -> None:
        self._raw = raw
        self.filename = path
        self._cache: dict = {} if values is None else values  # keyword -> value (_MISSING: absent)
        self._strings: dict = strings or {}

    def _full(self):
        """The whole raw header (parsed now if only the light values were read)."""
        if self._raw is None:
            from .dicom_rawheader import read_raw_header

            with open(self.filename, "rb") as fp:
                parsed = read_raw_header(fp, os.fstat(fp.fileno()).st_size)
            if parsed is None:
                raise AttributeError(f"{self.filename}: header no longer readable")
            self._raw = parsed[0]
        return self._raw

    def __contains__(self, keyword) -> bool:
        if isinstance(keyword, str) and keyword in self._cache:
            return self._cache[keyword] is not _MISSING
        return keyword in self._full()

    def get(self, keyword, default=None):
        if isinstance(keyword, str) and keyword in self._cache:
            value = self._cache[keyword]
            return default if value is _MISSING else value
        raw = self._full()
        if not (isinstance(keyword, str) and keyword in _LIGHT_DECODE):
            return raw.get(keyword, default)
        tag, vr = _tag_vr(keyword)
        elem = raw.get_item(tag)
        if elem is None:
            return default
        value = decode_raw(elem, vr)
        self._cache[keyword] = value
        return value

    def __getattr__(self, keyword: str):
        if keyword.startswith("_"):
            raise AttributeError(keyword)
        value = self.get(keyword, _MISSING)
        if value is _MISSING:
            raise AttributeError(f"{self.filename}: no {keyword}")
        return value

    def raw_strings(self, keyword: str) -> list[str]:
        """The stored backslash-separated values of a text element, each stripped."""
        if keyword in self._strings:
            return list(self._strings[keyword])
        elem = self._full().get_item(keyword)
        if elem is None:
            raise AttributeError(f"{self.filename}: no {keyword}")
        return _raw_strings(elem.value)


def _raw_strings(value: bytes) -> list[str]:
    return [v.strip(" \0") for v in value.decode("latin-1").strip(" \0").split("\\")]


#: Attributes a SEG reads from every source header, decoded straight from the raw bytes by
#: :func:`volumetry.io.dicom_values.decode_raw` (numbers, UIDs, code strings; a single value unwrapped).
_LIGHT_DECODE = frozenset({
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "Rows",
    "Columns", "NumberOfFrames", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "ImageType",
})
#: Every attribute :mod:`volumetry.io.seg` reads from a source header that is not the first one:
#: :data:`_LIGHT_DECODE` and Modality (a code string, decoded by its stored VR as the raw header does).
_LIGHT_KEYWORDS = tuple(sorted(_LIGHT_DECODE)) + ("Modality",)
#: Top-level tags whose presence makes the raw header reader leave a file to pydicom
#: (enhanced multi-frame functional groups): absent from every light header.
_LIGHT_ABSENT = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence")
_LONG_VR_BYTES = frozenset(vr.encode("ascii") for vr in _LONG_VRS)
_group_elem = struct.Struct("<HH").unpack_from
_u16_at = struct.Struct("<H").unpack_from
_u32_at = struct.Struct("<I").unpack_from
_element_head = struct.Struct("<HH2sH").unpack_from  # group, element, VR, 16-bit length (explicit VR)


@functools.lru_cache(maxsize=1)
def _light_tags() -> dict[int, tuple[str, str]]:
    """tag -> (keyword, dictionary VR) of :data:`_LIGHT_KEYWORDS`."""
    return {_tag_vr(kw)[0]: (kw, _tag_vr(kw)[1]) for kw in _LIGHT_KEYWORDS}


@functools.lru_cache(maxsize=1)
def _light_scan_tags() -> frozenset[int]:
    """Tags :func:`_scan_light` keeps: :data:`_LIGHT_KEYWORDS` and SpecificCharacterSet."""
    return frozenset(_light_tags()) | {0x00080005}


#: Character sets of the files the raw header reader parses itself (others go to pydicom).
_LIGHT_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"})
_FIRST_READ = 8192


class _Short(Exception):
    """The buffer ends before the header does (read more of the file)."""


class _Unhandled(Exception):
    """Something the raw header reader itself must look at (the file is left to it)."""


def _skip_undefined(buf: bytes, pos: int, explicit: bool) -> int:
    """Position after the undefined-length sequence whose first item starts at ``pos``, by the
    raw header reader's own walk (:func:`volumetry.io.dicom_rawheader._skip_sequence`)."""
    from .dicom_rawheader import _NeedMore, _skip_sequence, _Unsupported

    try:
        return _skip_sequence(buf, pos, explicit)
    except _NeedMore as exc:
        raise _Short from exc
    except _Unsupported as exc:
        raise _Unhandled from exc


#: States of :func:`_light_walk` (the file meta walk's are apart: the transfer syntax is checked between).
_WALK_OK, _WALK_NONE, _WALK_SHORT, _WALK_DECLINE = 0, 1, 2, 3
_WALK_META_NONE, _WALK_META_SHORT, _WALK_META_DECLINE = 11, 12, 13


def _light_explicit_element(buf, pos, long_vrs):
    """``(VR, value length, value start)`` of the explicit VR little endian element at ``pos`` (its
    8-byte head inside ``buf``; the VR as ``first byte << 8 | second byte``): a VR of ``long_vrs``
    has a 4-byte length after 2 reserved bytes, the others a 2-byte one; value start -1 when the
    4-byte length is past the end of ``buf``. Compiled with :func:`_light_walk`."""
    vr = (np.int64(buf[pos + 4]) << 8) | np.int64(buf[pos + 5])
    for v in long_vrs:
        if v == vr:
            if pos + 12 > buf.shape[0]:
                return vr, np.int64(-1), np.int64(-1)
            length = (np.int64(buf[pos + 8]) | (np.int64(buf[pos + 9]) << 8) | (np.int64(buf[pos + 10]) << 16)
                      | (np.int64(buf[pos + 11]) << 24))
            return vr, length, np.int64(pos + 12)
    return vr, np.int64(buf[pos + 6]) | (np.int64(buf[pos + 7]) << 8), np.int64(pos + 8)


def _light_walk(buf, wanted, long_vrs):
    """The element walk of :func:`_scan_light_py`, compiled (:func:`_light_walk_kernel`): the same
    positions and decisions, as numbers.

    Parameters
    ----------
    buf : uint8 array
        The file's first bytes.
    wanted : int64 array
        The tags to find.
    long_vrs : int64 array
        The VRs with a 4-byte length, as ``first byte << 8 | second byte``.

    Returns
    -------
    (state, ts_start, ts_end, found)
        ``state`` one of the ``_WALK_*`` states: the file meta walk's end (None, short, or left to
        :func:`_scan_light_py`, where it would raise), else the data set walk's (the transfer
        syntax, between ``ts_start`` and ``ts_end`` (-1: none), is to be checked first; a sequence
        of undefined length that is not made of items is left to :func:`_scan_light_py`); ``found``
        ``(VR position, value start, value end)`` of each wanted tag (the last of a repeated one),
        -1 when absent.
    """
    n = buf.shape[0]
    found = np.full((wanted.shape[0], 3), -1, np.int64)
    if n < 144 or buf[128] != 68 or buf[129] != 73 or buf[130] != 67 or buf[131] != 77:  # b"DICM"
        return _WALK_META_NONE, -1, -1, found
    pos = 132
    ts_start = -1
    ts_end = -1
    while True:  # file meta information, group 0002
        if pos + 8 > n:
            return _WALK_META_SHORT, ts_start, ts_end, found
        group = np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)
        element = np.int64(buf[pos + 2]) | (np.int64(buf[pos + 3]) << 8)
        if group != 0x0002:
            break
        vr, length, start = _light_explicit_element(buf, pos, long_vrs)
        if start < 0:  # struct.error there: left to the Python walk
            return _WALK_META_DECLINE, ts_start, ts_end, found
        if length == 0xFFFFFFFF:
            return _WALK_META_NONE, ts_start, ts_end, found
        if start + length > n:
            return _WALK_META_SHORT, ts_start, ts_end, found
        if element == 0x0010:
            ts_start = start
            ts_end = start + length
        pos = start + length
    while True:  # the data set, explicit VR little endian, up to PixelData
        if pos + 8 > n:
            return _WALK_SHORT, ts_start, ts_end, found
        group = np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)
        element = np.int64(buf[pos + 2]) | (np.int64(buf[pos + 3]) << 8)
        tag = (group << 16) | element
        if tag == 0x7FE00010:
            break
        if tag == 0x52009230 or tag == 0x52009229 or group == 0xFFFE:
            return _WALK_NONE, ts_start, ts_end, found
        vr, length, start = _light_explicit_element(buf, pos, long_vrs)
        if start < 0:
            return _WALK_SHORT, ts_start, ts_end, found
        if length == 0xFFFFFFFF:  # a sequence of undefined length: skipped as the raw header reader does
            state, pos = _light_skip_sequence(buf, start, vr != 0x554E, long_vrs)  # b"UN": implicit VR inside
            if state != _WALK_OK:
                return state, ts_start, ts_end, found
            continue
        end = start + length
        if end > n:
            return _WALK_SHORT, ts_start, ts_end, found
        for i in range(wanted.shape[0]):
            if wanted[i] == tag:
                if vr == 0x5351:  # b"SQ"
                    return _WALK_NONE, ts_start, ts_end, found
                found[i, 0] = pos + 4
                found[i, 1] = start
                found[i, 2] = end
        pos = end
    if pos + 12 > n:
        return _WALK_SHORT, ts_start, ts_end, found
    return _WALK_OK, ts_start, ts_end, found


def _light_skip_sequence(buf, pos, explicit, long_vrs):
    """``(state, position after the sequence)`` of an undefined-length sequence whose first item starts
    at ``pos``: the walk of :func:`volumetry.io.dicom_rawheader._skip_sequence` and its items'
    ``_parse(..., item=True)``, nested levels on a stack; short (``_NeedMore`` there) or left to the
    Python walk (anything else there raises, or a nesting deeper than the stack)."""
    n = buf.shape[0]
    depth = 0
    in_item = np.zeros(64, np.bool_)  # per level: False = the sequence's items, True = an item's elements
    explicit_at = np.zeros(64, np.bool_)
    explicit_at[0] = explicit
    while depth >= 0:
        if pos + 8 > n:
            return _WALK_SHORT, pos
        group = np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)
        element = np.int64(buf[pos + 2]) | (np.int64(buf[pos + 3]) << 8)
        tag = (group << 16) | element
        if not in_item[depth]:  # _skip_sequence
            length = (np.int64(buf[pos + 4]) | (np.int64(buf[pos + 5]) << 8) | (np.int64(buf[pos + 6]) << 16)
                      | (np.int64(buf[pos + 7]) << 24))
            pos += 8
            if tag == 0xFFFEE0DD:  # sequence delimiter
                depth -= 1
                continue
            if tag != 0xFFFEE000:  # not an item: the raw header reader gives up (raised there)
                return _WALK_DECLINE, pos
            if length != 0xFFFFFFFF:
                pos += length
            else:
                if depth + 1 >= 64:
                    return _WALK_DECLINE, pos
                depth += 1
                in_item[depth] = True
                explicit_at[depth] = explicit_at[depth - 1]
            continue
        if tag == 0xFFFEE00D:  # item delimiter
            pos += 8
            depth -= 1
            continue
        nested_explicit = False
        if explicit_at[depth] and group != 0xFFFE:
            vr, length, start = _light_explicit_element(buf, pos, long_vrs)
            if start < 0:
                return _WALK_SHORT, pos
            nested_explicit = vr != 0x554E  # b"UN"
        else:
            length = (np.int64(buf[pos + 4]) | (np.int64(buf[pos + 5]) << 8) | (np.int64(buf[pos + 6]) << 16)
                      | (np.int64(buf[pos + 7]) << 24))
            start = pos + 8
        if length == 0xFFFFFFFF:
            if depth + 1 >= 64:
                return _WALK_DECLINE, pos
            pos = start
            depth += 1
            in_item[depth] = False
            explicit_at[depth] = nested_explicit
            continue
        end = start + length
        if end > n:
            return _WALK_SHORT, pos
        pos = end
    return _WALK_OK, pos


@functools.lru_cache(maxsize=1)
def _light_walk_kernel():
    """:func:`_light_walk` compiled (``volumetry._jit.kernel``; made on first use, so that reading a SEG's
    sources alone does not import numba) with its constant arguments."""
    from .._jit import kernel

    global _light_explicit_element, _light_skip_sequence
    # compiled first and bound to their names, where the functions calling them find them when compiled
    if not hasattr(_light_explicit_element, "py_func"):
        _light_explicit_element = kernel()(_light_explicit_element)
    if not hasattr(_light_skip_sequence, "py_func"):
        _light_skip_sequence = kernel()(_light_skip_sequence)
    tags = sorted(_light_scan_tags())
    long_vrs = np.array(sorted((vr[0] << 8) | vr[1] for vr in _LONG_VR_BYTES), dtype=np.int64)
    return kernel()(_light_walk), tags, np.array(tags, dtype=np.int64), long_vrs


def _scan_light(buf: bytes) -> dict[int, tuple[bytes, bytes]] | None:
    """:func:`_scan_light_py` (the same dict, None or exception for every buffer), its element walk
    compiled (:func:`_light_walk`, sequences of undefined length skipped by
    :func:`_light_skip_sequence`); where the Python walk would raise other than for a short buffer
    (a file meta walk past the buffer, a sequence that is not items), it walks the buffer itself."""
    walk, tags, wanted, long_vrs = _light_walk_kernel()
    state, ts_start, ts_end, positions = walk(np.frombuffer(buf, dtype=np.uint8), wanted, long_vrs)
    if state >= _WALK_META_NONE:
        if state == _WALK_META_SHORT:
            raise _Short
        if state == _WALK_META_NONE:
            return None
        return _scan_light_py(buf)
    if ts_start < 0 or buf[ts_start:ts_end].decode("ascii").strip(" \0") != _EXPLICIT_LE:
        return None
    if state != _WALK_OK:
        if state == _WALK_SHORT:
            raise _Short
        if state == _WALK_NONE:
            return None
        return _scan_light_py(buf)
    out: dict[int, tuple[bytes, bytes]] = {}
    for tag, (vr_pos, start, end) in zip(tags, positions.tolist()):
        if start >= 0:
            out[tag] = (buf[vr_pos:vr_pos + 2], buf[start:end])
    return _light_accepted(out)


def _light_accepted(out: dict[int, tuple[bytes, bytes]]) -> dict[int, tuple[bytes, bytes]] | None:
    """``out`` when its character set is one the raw header reader decodes and the image is no mosaic."""
    charset = out.get(0x00080005)
    if (charset[1].decode("ascii").strip(" \0") if charset is not None else "") not in _LIGHT_CHARSETS:
        return None
    image_type = out.get(0x00080008)
    if image_type is not None and b"MOSAIC" in image_type[1].upper():
        return None
    return out


def _scan_light_py(buf: bytes) -> dict[int, tuple[bytes, bytes]] | None:
    """``tag -> (VR, value bytes)`` of :data:`_LIGHT_KEYWORDS` in an explicit VR little endian
    classic header, walking the top-level elements up to PixelData as
    :func:`volumetry.io.dicom_rawheader.read_raw_header` does (sequences of undefined length skipped
    by its own code) and accepting a file only where it would (preamble, transfer syntax, character
    set, no mosaic, no enhanced functional groups, PixelData's head inside the buffer); None for
    anything else (implicit VR, an item tag at the top level, an odd VR of a wanted tag), which is
    then read by the raw header reader itself.

    Raises
    ------
    _Short
        If the buffer ends before PixelData.
    """
    n = len(buf)
    if n < 144 or buf[128:132] != b"DICM":
        return None
    pos, ts = 132, None
    while True:  # file meta information, group 0002, explicit VR little endian
        if pos + 8 > n:
            raise _Short
        group, element = _group_elem(buf, pos)
        if group != 0x0002:
            break
        vr = buf[pos + 4:pos + 6]
        if vr in _LONG_VR_BYTES:
            (length,) = _u32_at(buf, pos + 8)
            start = pos + 12
        else:
            (length,) = _u16_at(buf, pos + 6)
            start = pos + 8
        if length == 0xFFFFFFFF:
            return None
        if start + length > n:
            raise _Short
        if element == 0x0010:
            ts = buf[start:start + length]
        pos = start + length
    if ts is None or ts.decode("ascii").strip(" \0") != _EXPLICIT_LE:
        return None
    wanted = _light_scan_tags()
    out: dict[int, tuple[bytes, bytes]] = {}
    head = _element_head
    long_vrs = _LONG_VR_BYTES
    while True:
        if pos + 8 > n:
            raise _Short
        group, element, vr, length = head(buf, pos)
        tag = (group << 16) | element
        if tag == 0x7FE00010:
            break
        if tag in (0x52009230, 0x52009229) or group == 0xFFFE:
            return None
        if vr in long_vrs:
            if pos + 12 > n:
                raise _Short
            (length,) = _u32_at(buf, pos + 8)
            start = pos + 12
        else:
            start = pos + 8
        if length == 0xFFFFFFFF:  # a sequence of undefined length: skipped, as the raw header reader does
            pos = _skip_undefined(buf, start, vr != b"UN")
            continue
        end = start + length
        if end > n:
            raise _Short
        if tag in wanted:
            if vr == b"SQ":
                return None
            out[tag] = (vr, buf[start:end])
        pos = end
    if pos + 12 > n:
        raise _Short
    return _light_accepted(out)


def _light_values(found: dict[int, tuple[bytes, bytes]], decoded: dict | None = None) -> tuple[dict, dict] | None:
    """The decoded :data:`_LIGHT_KEYWORDS` values (the raw header's decoding; _MISSING when
    absent) and the stored position strings, or None where a value would not decode (the raw
    header then raises when the value is asked for, as before). ``decoded``: values already
    decoded from the same bytes, by (tag, stored VR, bytes), shared with the other headers of a
    series (UIDs, orientation, matrix size are the same in every file; read-only)."""
    from .dicom_rawheader import RawElement

    values: dict = dict.fromkeys(_LIGHT_ABSENT, _MISSING)
    strings: dict = {}
    if decoded is None:
        decoded = {}
    for tag, (keyword, vr) in _light_tags().items():
        item = found.get(tag)
        if item is None:
            values[keyword] = _MISSING
            continue
        key = (tag, item[0], item[1])
        value = decoded.get(key, _MISSING)
        if value is _MISSING:
            stored_vr = item[0].decode("ascii")
            if keyword == "Modality":
                if stored_vr != "CS":
                    return None
            value = decode_raw(RawElement(stored_vr, item[1]), vr)
            if value is NotImplemented:
                return None
            decoded[key] = value
        values[keyword] = value
    position = found.get(0x00200032)
    if position is not None:
        strings["ImagePositionPatient"] = tuple(_raw_strings(position[1]))
    return values, strings


def _read_light(read, file_size: int, path: str, shared: dict | None = None) -> LightHeader | None:
    """A light header of ``_scan_light``'s files (reading more of the file when the header
    is longer than the first read), or None to leave the file to the raw header reader
    (``read(n)``: the first ``n`` bytes of the file; ``shared``: see :func:`_light_values`)."""
    size = min(_FIRST_READ, file_size)
    while True:
        buf = read(size)
        try:
            found = _scan_light(buf)
            decoded = None if found is None else _light_values(found, shared)
        except _Short:
            if size >= file_size:
                return None
            size = min(size * 4, file_size)
            continue
        except (_Unhandled, struct.error, UnicodeDecodeError, ValueError, TypeError):
            return None
        return None if decoded is None else LightHeader(None, path, *decoded)


def _file_start(fd: int):
    """``read(n)``: the first ``n`` bytes of the open file ``fd`` (fewer at its end), by positioned reads."""
    def read(size: int) -> bytes:
        buf = os.pread(fd, size, 0)
        while len(buf) < size:
            more = os.pread(fd, size - len(buf), len(buf))
            if not more:
                break
            buf += more
        return buf

    return read


def read_light_header(path: str, shared: dict | None = None) -> LightHeader | None:
    """A :class:`LightHeader` of ``path``, or None when the raw parser leaves the file to pydicom.

    The common file (explicit VR little endian, no sequence of undefined length) is scanned for
    the attributes a SEG reads alone (:func:`_scan_light`, twice as fast as parsing every element),
    read with plain file calls; any other goes through
    :func:`volumetry.io.dicom_rawheader.read_raw_header`, which decides. ``shared`` (one dict for
    the files of a series): values decoded from equal bytes are decoded once and shared (read-only)
    by the headers.
    """
    import stat

    from .dicom_rawheader import read_raw_header

    fd = os.open(path, os.O_RDONLY)  # the errors of open(path, "rb")
    try:
        st = os.fstat(fd)
        regular = stat.S_ISREG(st.st_mode)
        if regular:
            light = _read_light(_file_start(fd), st.st_size, str(path), shared)
            if light is not None:
                return light
    finally:
        os.close(fd)
    with open(path, "rb") as fp:  # the raw header reader's file (or another kind of file: as before)
        file_size = os.fstat(fp.fileno()).st_size
        if not regular:
            light = _read_light(lambda size: (fp.seek(0), fp.read(size))[1], file_size, str(path), shared)
            if light is not None:
                return light
        fp.seek(0)
        parsed = read_raw_header(fp, file_size)
    return None if parsed is None else LightHeader(parsed[0], str(path))
