"""Everything that reads or writes image files lives here.

Use :func:`volumetry.io.read_image` to load any supported input (DICOM folder
or file, NIfTI, NRRD, MHA) as a :class:`volumetry.image.Volume` in LPS.
"""
