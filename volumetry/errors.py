"""Exception hierarchy of volumetry.

Every message names what was read (file, series, tag or value), what is wrong
and how to fix it. The CLI maps :class:`InputError` to exit status 2 (bad
input or usage, one line, no traceback) and anything else to 1.
"""
from __future__ import annotations


class VolumetryError(Exception):
    """Base class of every error raised on purpose by volumetry."""


class InputError(VolumetryError, ValueError):
    """The input given by the user cannot be used as it is (CLI exit 2)."""


class DicomReadError(InputError):
    """A DICOM file cannot be read: not DICOM, truncated, or undecodable pixels."""


class SeriesGeometryError(InputError):
    """A series' slices do not form one regular grid (missing slice, uneven
    spacing, mixed orientations, non-parallel slices)."""


class SeriesSelectionError(InputError):
    """The input holds several series or volumes and none was selected, or the
    selection matches nothing. The message lists the choices."""


class ImageFormatError(InputError):
    """An image file (NIfTI, NRRD, MHA) is unreadable or ambiguous: sform/qform
    disagreement, 4D without a selected volume, NaN or infinite voxels."""


class GeometryMismatchError(InputError):
    """Two images (e.g. a mask and its image) are not on the same grid."""


class PromptError(InputError):
    """A segmentation prompt (seed, box) is invalid, e.g. outside the image."""


class ConfigError(InputError):
    """A pipeline file (YAML) is invalid: unknown key, wrong type or value."""


class ManifestError(InputError):
    """A study manifest (CSV) is invalid: missing column, bad value, missing file."""


class MeasurementError(VolumetryError):
    """A measurement cannot be computed from valid inputs (e.g. baseline of 0 mL
    used as a divisor)."""
