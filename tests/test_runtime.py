"""kernels/runtime.py (the opt-in process settings) and kernels/threads.py (the per-call thread policy)."""

import json
import os
import resource
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_attn.kernels import fast, runtime, threads

# Runs in a fresh interpreter: records os.environ, numba's thread settings and any mallopt call around
# `import tinygrad_attn` (and a first kernel call), and prints what changed.
_IMPORT_PROBE = """
import ctypes, json, os, sys
calls = []
class SpyCDLL(ctypes.CDLL):
    def __getattr__(self, name):
        if name == "mallopt":
            calls.append(name)
        return super().__getattr__(name)
ctypes.CDLL = SpyCDLL
import numba
before_env, before_threads, before_layer = dict(os.environ), numba.get_num_threads(), numba.config.THREADING_LAYER
import numpy as np
import tinygrad_attn as ta
ta.kernels.softmax(np.ones((4, 4), np.float32))
print(json.dumps({"env_changed": sorted(set(os.environ.items()) ^ set(before_env.items())), "mallopt": calls,
                  "threads": [before_threads, numba.get_num_threads()],
                  "layer": [before_layer, numba.config.THREADING_LAYER]}))
"""


def _probe(script: str, **env) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", script], env={**environ, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_changes_no_process_state():
    got = _probe(_IMPORT_PROBE)
    assert got["env_changed"] == []
    assert got["mallopt"] == []
    assert got["threads"][0] == got["threads"][1]
    assert got["layer"][0] == got["layer"][1]


def test_tune_process_applies_once_and_keeps_user_settings():
    script = """
import json, os
import numpy as np
import tinygrad_attn as ta
first = ta.kernels.tune_process()
print(json.dumps({"first": first, "wait": os.environ.get("OMP_WAIT_POLICY"), "spin": os.environ.get("GOMP_SPINCOUNT")}))
"""
    got = _probe(script)
    assert got["wait"] is None and got["spin"] == runtime.SPINCOUNT
    assert got["first"]["openmp_spin"] is True
    assert got["first"]["malloc_thresholds"] is sys.platform.startswith("linux")
    got = _probe(script, GOMP_SPINCOUNT="5")                       # the user's own choice wins
    assert got["first"]["openmp_spin"] is False and got["wait"] is None and got["spin"] == "5"
    got = _probe(script, OMP_WAIT_POLICY="passive")
    assert got["first"]["openmp_spin"] is False and got["wait"] == "passive" and got["spin"] is None


def test_tune_process_after_the_thread_pool_started_says_so():
    script = """
import json, numba
import numpy as np
from tinygrad_attn.kernels import elementwise, runtime
x = np.ones(10, np.float32)
elementwise.gelu_parallel(x, np.empty_like(x), 4)                 # starts Numba's thread pool
print(json.dumps({"openmp": runtime.configure_openmp()}))
"""
    assert _probe(script)["openmp"] is False


def test_malloc_opt_out(monkeypatch):
    monkeypatch.setenv("TINYGRAD_ATTN_KEEP_MALLOC", "1")
    assert runtime.configure_malloc() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_arrays_are_reused_without_page_faults():
    """A step's pattern: several 1 MB arrays live at once, then all freed. With glibc's defaults the
    freed top of the heap can go back to the system and every round fault its pages in again; with
    the raised thresholds the pages are reused."""
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


# ----------------------------------------------------------------------------- thread policy


@pytest.fixture
def fresh_policy(monkeypatch):
    monkeypatch.setattr(threads, "_state", {"off_until": 0.0, "backoff": threads.BACKOFF_S,
                                            "min_ns": threads.MIN_PARALLEL_NS["passive"], "gain": 0.0})
    monkeypatch.setattr(threads, "_pace", {})
    monkeypatch.setattr(threads, "_timed", set())
    monkeypatch.setattr(threads, "_ready", set())
    monkeypatch.setattr(threads, "_serial_ns", {})
    monkeypatch.setattr(threads, "_eligible", {})
    monkeypatch.setattr(threads, "num_threads", lambda: 2)
    monkeypatch.setattr(threads, "probe", lambda kernel: False)    # rule 5 has a test of its own
    return threads._state


def test_threads_only_for_enough_work(fresh_policy, monkeypatch):
    threshold = fresh_policy["min_ns"]
    assert not threads.use_threads(threshold - 1)
    assert threads.use_threads(threshold)
    monkeypatch.setattr(threads, "num_threads", lambda: 1)   # NUMBA_NUM_THREADS=1 / set_num_threads(1)
    assert not threads.use_threads(10 * threshold)


def test_threshold_follows_the_wait_policy(monkeypatch):
    monkeypatch.setattr(threads, "_state", {**threads._state, "min_ns": None})
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert threads.min_parallel_ns() == threads.MIN_PARALLEL_NS["spinning"]     # libgomp's default: long spins
    monkeypatch.setenv("GOMP_SPINCOUNT", runtime.SPINCOUNT)
    assert threads.min_parallel_ns() == threads.MIN_PARALLEL_NS["spinning"]     # decided once ...
    threads.refresh()
    assert threads.min_parallel_ns() == threads.MIN_PARALLEL_NS["bounded"]      # ... until refreshed
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert threads.wait_mode() == "passive"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    for spin, mode in (("0", "passive"), ("1000", "bounded"), ("30000", "bounded"), ("300000", "spinning"),
                       ("x", "spinning")):
        monkeypatch.setenv("GOMP_SPINCOUNT", spin)
        assert threads.wait_mode() == mode, spin
    assert threads.MIN_PARALLEL_NS["bounded"] < threads.MIN_PARALLEL_NS["passive"] < threads.MIN_PARALLEL_NS["spinning"]


def _kernel():
    return None


def test_threads_back_off_when_the_time_they_lose_adds_up(fresh_policy, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(threads.time, "perf_counter", lambda: now[0])
    work = 2 * fresh_policy["min_ns"]                        # 200 us of single-thread work
    threads.record(work, 1.0, _kernel)                       # the kernel's first call: not counted
    for _ in range(50):
        threads.record(work, 0.6 * work / 1e9, _kernel)      # paid: 80 us saved each
    assert threads.use_threads(work, _kernel) and fresh_policy["gain"] > 0
    threads.record(work, work / 1e9 + 0.002, _kernel)        # one 2 ms stall: absorbed by what was saved
    assert threads.use_threads(work, _kernel)
    for _ in range(3):
        threads.record(work, work / 1e9 + 0.002, _kernel)    # stalls keep coming (a busy core): off ...
    assert not threads.use_threads(work, _kernel)
    now[0] += threads.BACKOFF_S
    assert threads.use_threads(work, _kernel)                # ... for BACKOFF_S
    threads.record(work, work / 1e9 + 0.003, _kernel)        # failing again: twice as long
    now[0] += 1.1 * threads.BACKOFF_S
    assert not threads.use_threads(work, _kernel)
    now[0] += 1.1 * threads.BACKOFF_S
    assert threads.use_threads(work, _kernel)
    for _ in range(10):                                      # the back-off stops doubling at MAX_BACKOFF_S
        threads.record(work, work / 1e9 + 0.003, _kernel)
    assert fresh_policy["backoff"] == threads.MAX_BACKOFF_S
    threads.record(work, 0.5 * work / 1e9, _kernel)
    assert fresh_policy["backoff"] == threads.BACKOFF_S       # reset by a call that pays


def test_the_pace_of_serial_calls_scales_the_expected_time(fresh_policy):
    """A kernel whose serial calls take 3x its estimate (a slower machine) is judged by what it does: small
    calls reach the threshold sooner, and parallel calls are compared with the measured serial time."""
    work = 0.5 * fresh_policy["min_ns"]
    assert not threads.use_threads(work, _kernel)
    threads.record_serial(work, 5.0, _kernel)                 # the first call compiles: sets no pace
    assert threads.expected_ns(work, _kernel) == work
    for _ in range(60):
        threads.record_serial(work, 3 * work / 1e9, _kernel)
    assert threads.expected_ns(work, _kernel) == pytest.approx(3 * work, rel=1e-3)
    assert threads.use_threads(work, _kernel)
    threads.record_serial(threads.MIN_PACED_NS / 2, 1.0, _kernel)   # tiny calls (overhead) set no pace
    assert threads.expected_ns(work, _kernel) == pytest.approx(3 * work, rel=1e-3)
    assert threads.expected_ns(work, None) == work                  # an unmeasured kernel: the estimate


def test_run_picks_the_kernel_and_times_only_parallel_calls(fresh_policy, monkeypatch):
    recorded, serial_recorded = [], []
    monkeypatch.setattr(threads, "record", lambda work, elapsed, kernel: recorded.append(work))
    monkeypatch.setattr(threads, "record_serial", lambda work, elapsed, kernel: serial_recorded.append(work))
    assert threads.run(lambda x: ("serial", x), lambda x: ("parallel", x), 10.0, 1) == ("serial", 1)
    assert recorded == [] and serial_recorded == [10.0]
    big = 10 * fresh_policy["min_ns"]
    assert threads.run(lambda x: ("serial", x), lambda x: ("parallel", x), big, 2) == ("parallel", 2)
    assert recorded == [big] and serial_recorded == [10.0]


def test_work_estimates_scale_with_the_call(fresh_policy, monkeypatch):
    """The wrappers hand the policy a work estimate that grows with the call and with the dtype's size."""
    seen = []
    monkeypatch.setattr(threads, "use_threads", lambda work_ns, kernel=None: seen.append(work_ns) or False)
    for n in (64, 128):
        x = np.ones((n, n), np.float32)
        fast.matmul(x, x)
        fast.softmax(x)
        fast.matmul(x.astype(np.float64), x.astype(np.float64))
    mm32, sm32, mm64, mm32_big, sm32_big, mm64_big = seen
    assert mm32_big == pytest.approx(8 * mm32) and sm32_big == pytest.approx(4 * sm32)
    assert mm64 == pytest.approx(2 * mm32) and mm64_big == pytest.approx(2 * mm32_big)


def test_describe_names_the_policy():
    text = threads.describe()
    assert "Numba threads" in text and "OpenMP wait" in text


def test_a_kernels_first_parallel_call_is_not_judged(fresh_policy, monkeypatch):
    """The first call of a parallel kernel loads its code and may start the pool (161 ms against a 1 ms
    estimate, measured): counting it as a stall switched threads off at the start of every run."""
    work = 10 * fresh_policy["min_ns"]

    def kernel():
        return None

    threads.record(work, 100 * work / 1e9, kernel)            # first call: slow, and not held against threads
    assert threads.use_threads(work, kernel)
    threads.record(work, 100 * work / 1e9, kernel)            # the same kernel slow again: a real stall
    assert not threads.use_threads(work, kernel)


def test_an_uncompiled_parallel_twin_waits_until_the_serial_work_pays_for_its_compile(fresh_policy, tmp_path):
    """A parallel kernel with no code in the process and no cache index on disk compiles for seconds: it is
    used only after the serial twin has done COMPILE_WORTH_NS of work; a cached or compiled one at once."""
    class Dispatcher:                                     # the parts of a Numba dispatcher the rule reads
        def __init__(self, index):
            self.signatures = []
            self._cache = type("C", (), {"_cache_file": type("F", (), {"_index_path": str(index)})})()

    uncached, cached = Dispatcher(tmp_path / "none.nbi"), Dispatcher(tmp_path / "kernel.nbi")
    (tmp_path / "kernel.nbi").write_bytes(b"")
    work = 10 * fresh_policy["min_ns"]
    assert threads.use_threads(work, cached)
    assert not threads.use_threads(work, uncached)
    for _ in range(int(threads.COMPILE_WORTH_NS // work)):
        threads.record_serial(work, work / 1e9, uncached)
    assert threads.use_threads(work, uncached)
    compiled = Dispatcher(tmp_path / "none.nbi")
    compiled.signatures = ["(float32[:, :],)"]
    assert threads.use_threads(work, compiled)
    assert threads.compiled_or_cached(lambda: None)       # not a caching dispatcher: no reason to wait
    other, third = Dispatcher(tmp_path / "other.nbi"), Dispatcher(tmp_path / "third.nbi")
    with threads.parallel_at_once():                      # the bench: a long run's steady state at once
        assert threads.use_threads(work, other)
    assert not threads.use_threads(work, third)           # and the rule is back


def test_num_threads_is_numbas_count_before_and_after_the_pool_starts():
    """The policy's lock-free `num_threads` agrees with `numba.get_num_threads()`, set_num_threads included."""
    import numba

    assert threads.num_threads() == numba.get_num_threads()
    fast.softmax_backward(np.ones((64, 64), np.float32), np.ones((64, 64), np.float32))   # may start the pool
    assert threads.num_threads() == numba.get_num_threads()
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert threads.num_threads() == 1
    finally:
        numba.set_num_threads(before)
    assert threads.num_threads() == before


def test_the_pace_is_measured_by_serial_probes(monkeypatch):
    """Rule 5: a kernel that could always go parallel still runs serially until its pace is measured, then once
    in PROBE_EVERY calls; without it the pace stayed at the estimate's (attention ran 2x its estimate here, so
    parallel calls looked like losses and threads backed off)."""
    monkeypatch.setattr(threads, "_state", {"off_until": 0.0, "backoff": threads.BACKOFF_S,
                                            "min_ns": threads.MIN_PARALLEL_NS["bounded"], "gain": 0.0})
    monkeypatch.setattr(threads, "_pace", {})
    monkeypatch.setattr(threads, "_ready", set())
    monkeypatch.setattr(threads, "_serial_ns", {})
    monkeypatch.setattr(threads, "_timed", set())
    monkeypatch.setattr(threads, "_eligible", {})
    monkeypatch.setattr(threads, "num_threads", lambda: 2)
    work = 10 * threads.MIN_PARALLEL_NS["bounded"]
    ran = []
    serial = lambda: ran.append("serial")                          # noqa: E731
    parallel = lambda: ran.append("parallel")                      # noqa: E731
    for _ in range(2 * threads.PROBE_EVERY):
        threads.run(serial, parallel, work)
    assert ran[:2] == ["serial", "serial"]             # the first serial call (loading code) sets no pace ...
    assert id(parallel) in threads._pace               # ... the second does
    probes = [i for i, r in enumerate(ran) if r == "serial"]
    assert probes == [0, 1, threads.PROBE_EVERY - 1, 2 * threads.PROBE_EVERY - 1]
    assert not threads.probe(None)                                 # no kernel, no pace to measure
