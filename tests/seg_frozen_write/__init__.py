"""The DICOM SEG writer as it was before the per-series caches of the write stage (commit 8737b9c),
kept verbatim as the reference that ``tests/test_seg_write_cache_equality.py`` compares the current
writer with, byte for byte.

``seg.py`` and ``seg_fast.py`` are ``volumetry/io/seg.py`` and ``volumetry/io/seg_fast.py`` of that
commit with only their imports of other volumetry modules made absolute (their relative imports of
each other stay, so the two frozen modules use each other). Not a test module.
"""
