"""The batch pipeline: a study (manifest or DICOM tree) through load → (propagate) →
segment → measure → assess → tables and masks, with a results store and caching.

Public API
----------
:func:`run_study` (study, cfg, out_dir, *, jobs=None, dask_address=None,
pseudonymize=False, progress=None, argv=None) -> :class:`RunSummary`

Modules: :mod:`.tasks` (one scan = one pure task), :mod:`.runner` (planning,
caching, local pool or Dask, the only writer of the store), :mod:`.outputs`
(assessment, tables, BIDS-derivatives masks).
"""
from .runner import Failure, RunSummary, run_study

__all__ = ["Failure", "RunSummary", "run_study"]
