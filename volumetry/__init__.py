"""volumetry: lesion volumetry on MRI for clinical trials.

The package keeps one geometry convention, LPS (DICOM's and SimpleITK's), and
one image type, :class:`volumetry.image.Volume`.
"""
import logging

from ._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["__version__"]
