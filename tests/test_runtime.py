"""kernels/runtime.py: the process settings applied when the kernels are imported."""

import resource
import sys

import numpy as np
import pytest

import tinygrad_attn.kernels  # noqa: F401  (applies the settings)
from tinygrad_attn.kernels import runtime


def test_openmp_spin_is_bounded_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    runtime.configure_openmp()
    assert runtime.os.environ["GOMP_SPINCOUNT"] == runtime.SPIN_COUNT
    monkeypatch.setenv("GOMP_SPINCOUNT", "5")                  # the user's own value wins
    runtime.configure_openmp()
    assert runtime.os.environ["GOMP_SPINCOUNT"] == "5"
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")           # so does a wait policy
    runtime.configure_openmp()
    assert "GOMP_SPINCOUNT" not in runtime.os.environ


def test_malloc_opt_out(monkeypatch):
    monkeypatch.setenv("TINYGRAD_ATTN_KEEP_MALLOC", "1")
    assert runtime.configure_malloc() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_arrays_are_reused_without_page_faults():
    """A step's pattern: several 1 MB arrays live at once, then all freed. With glibc's defaults the
    freed top of the heap goes back to the system and every round faults its pages in again
    (~30,000 faults for this loop); with the raised thresholds the pages are reused."""
    assert runtime.configure_malloc() is True

    def one_round():
        held = [np.ones((1024, 256), np.float32) for _ in range(6)]
        return sum(float(h[0, 0]) for h in held)

    for _ in range(3):                                         # the heap grows to the working set once
        one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        one_round()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 20 * 6 * 256 // 10
