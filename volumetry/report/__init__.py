"""The review report: overlay montages, waterfall and spider plots, the HTML QC page.

Entry points: :func:`volumetry.report.build.build_report` (study level, reads a
pipeline output folder) and :func:`volumetry.report.overlays.render_scan_overlay`
(per scan, for workers that hold the image). Heavy libraries are imported
inside the modules that need them.
"""
