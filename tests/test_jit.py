"""The compiled-kernel helper: kernels compile, are registered for warm-up, and compute like Python."""
import numpy as np

from volumetry import _jit


def test_kernel_compiles_registers_and_equals_python():
    def total(a):
        s = 0.0
        for v in a:
            s += v
        return s

    before = len(_jit._WARM)
    compiled = _jit.kernel(warm=lambda: (np.arange(3.0),))(total)
    try:
        assert len(_jit._WARM) == before + 1
        assert _jit.warm_all() == before + 1
        x = np.random.default_rng(0).normal(size=101)
        assert compiled(x) == total(x)  # same left-to-right sum, bit for bit
        assert compiled.signatures  # compiled by warm_all, not left as Python
    finally:
        del _jit._WARM[before:]


def test_kernel_without_a_writable_cache_still_compiles(monkeypatch, caplog):
    import numba

    real = numba.njit

    def no_cache_folder(*args, cache=False, **kw):
        if cache:  # what numba raises when no folder can hold its cache (read-only install, no home)
            raise RuntimeError("cannot cache function 'double': no locator available for file 'x.py'")
        return real(*args, cache=cache, **kw)

    monkeypatch.setattr(numba, "njit", no_cache_folder)

    def double(a):
        return a * 2

    with caplog.at_level("WARNING", logger="volumetry._jit"):
        compiled = _jit.kernel()(double)
    assert compiled(21) == 42 and compiled.signatures
    assert "not cached" in caplog.text and "NUMBA_CACHE_DIR" in caplog.text
