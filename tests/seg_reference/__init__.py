"""The DICOM SEG writer as it was before its speed work (commit e94f556), kept verbatim as the
reference that ``tests/test_seg_speed_equality.py`` compares the current writer with, byte for byte.

``seg.py`` and ``seg_fast.py`` are ``volumetry/io/seg.py`` and ``volumetry/io/seg_fast.py`` of that
commit with only their imports of other volumetry modules made absolute; ``outputs.py`` holds the
pipeline's SEG functions of ``volumetry/pipeline/outputs.py`` of that commit. Not a test module.
"""
