"""Compiled kernels: numba's ``njit`` with the project's settings, and their warm-up.

The hot loops of segmentation and measurement (flood fills, morphology,
order statistics on a crop) are small numba kernels. Each is compiled once
per machine (numba's on-disk cache, next to the module or in the user's cache
folder when the package folder is read-only) and loaded once per process:
:func:`warm_all` does that up front, so that a pool worker pays it with its
imports and not inside the first scan it times.

Every kernel has a pure-numpy oracle in the tests that it must equal exactly
(no kernel may change a number).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger(__name__)

_WARM: list[tuple[Callable, Callable[[], tuple]]] = []


def kernel(warm: Callable[[], tuple] | None = None, **options):
    """Decorator: compile ``func`` with ``numba.njit(cache=True, nogil=True, **options)``.

    Parameters
    ----------
    warm : callable, optional
        Returns example arguments of the types the pipeline passes; :func:`warm_all`
        calls the kernel on them once (compiling it, or loading it from the cache).
    **options
        Further ``numba.njit`` options.
    """
    import numba

    def deco(func):
        try:
            compiled = numba.njit(cache=True, nogil=True, **options)(func)
        except RuntimeError as exc:  # no writable cache folder (read-only install, no home): compile per process
            log.warning("compiled kernel %s is not cached (%s); set NUMBA_CACHE_DIR to a writable folder to "
                        "compile it once per machine", func.__qualname__, exc)
            compiled = numba.njit(cache=False, nogil=True, **options)(func)
        if warm is not None:
            _WARM.append((compiled, warm))
        return compiled

    return deco


def warm_all() -> int:
    """Compile (or load from the cache) every registered kernel for its example arguments.

    Returns
    -------
    int
        Number of kernels warmed.
    """
    t0 = time.perf_counter()
    told = False
    for n, (compiled, warm) in enumerate(_WARM):
        compiled(*warm())
        if not told and time.perf_counter() - t0 > SLOW_S:  # not in the cache: numba compiles them
            log.info("compiling the pipeline's kernels for this machine (once: later runs load them from "
                     "numba's cache; about 30 s)")
            told = True
    log.debug("%d compiled kernels ready in %.2f s", len(_WARM), time.perf_counter() - t0)
    return len(_WARM)


#: Seconds after which :func:`warm_all` says it is compiling (loading from the cache takes milliseconds).
SLOW_S = 1.0
