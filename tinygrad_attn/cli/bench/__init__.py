"""Benchmark runner: `python -m tinygrad_attn.cli.bench` (also `tinygrad-attn bench`).

Cases come from `bench/kernels.py` and, when present, `bench/attention.py` and
`bench/training.py`, each providing `cases() -> list[BenchCase]` (`quick=True` is passed to
those whose `cases` accepts it).

Timing method: every implementation is warmed up (first calls compile Numba code), then
samples are taken round-robin across the implementations of a case (a, b, c, a, b, c, ...),
so a burst of noise on a shared machine hits all of them alike; each sample times several
calls, and the table reports the median sample per call. `ratio` is an implementation's time
over the case's baseline (below 1: faster than the baseline).

Start-up: `import tinygrad_attn.kernels` plus the first call of matmul and softmax, then of every
kernel, measured in fresh subprocesses with an empty Numba cache (cold: everything compiles) and
again with that cache filled (warm).

The header says where it ran: CPU model, cores, the thread policy, library versions. The bench
makes the `tinygrad-attn` command's opt-in process settings (`kernels.tune_process()`) unless
`--no-tune` (then it measures what a library user gets by default). It times the steady state of a long
run: each kernel's parallel twin compiles during its warm-up (`threads.parallel_at_once()`), where
a short run on a fresh Numba cache would stay on one thread. `--busy` times the training
steps beside a `while True: pass` process that it starts and stops itself (one core held by
another job, as on a learner's laptop).
"""

import importlib
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from ...kernels import runtime, threads
from ..args import Parser, check_output_file, integer
from .case import BenchCase

CASE_MODULES = ("kernels", "attention", "training")


def case_modules() -> list:
    """The bench modules that import; a missing one is skipped with a note. `main` imports them before
    `tune_process`, and with them PyTorch (bench/kernels.py), whose own OpenMP runtime then reads the
    environment as in any PyTorch program: loaded after it, that runtime took our GOMP_SPINCOUNT too, and
    PyTorch's softmax forward+backward (2048, 64) ran 200-1000 us in the bench against 130-170 us."""
    found = []
    for name in CASE_MODULES:
        try:
            found.append(importlib.import_module(f"{__name__}.{name}"))
        except ImportError as err:
            print(f"(skipping bench/{name}.py: {err})")
    return found


def collect_cases(modules: list, quick: bool) -> list[BenchCase]:
    """The cases of the given bench modules (`case_modules()`)."""
    found = []
    for module in modules:
        takes_quick = "quick" in inspect.signature(module.cases).parameters
        found.extend(module.cases(quick=quick) if takes_quick else module.cases())
    return found


def _calls_per_sample(fn, target_s: float = 2e-3, tries: int = 5) -> int:
    """How many calls make one sample last about `target_s` (at least one), from the fastest of up to
    `tries` calls (fewer once they have taken 25 samples' time: a slow implementation is called once). One
    call alone may meet sleeping workers or a preemption: a 1 ms call in place of a 0.2 ms one made every
    sample of that implementation a single call right after a wake-up."""
    fastest, spent = float("inf"), 0.0
    for _ in range(tries):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        fastest, spent = min(fastest, dt), spent + dt
        if spent >= 25 * target_s:
            break
    return max(1, min(1000, int(target_s / max(fastest, 1e-7))))


# OpenBLAS's workers (numpy's matmul) spin for ~0.1 s after every call, long enough to slow the next
# implementation's sample by 2x on 2 cores; the bench runs in a child process where they sleep at once.
_OPENBLAS_TIMEOUT = "OPENBLAS_THREAD_TIMEOUT"

# Before each sample: let the previous implementation's OpenMP workers (Numba's or PyTorch's) finish
# spinning and sleep, so that two thread pools do not fight over the cores (kernels/runtime.py). PyTorch's
# spin (libgomp's default) keeps one core busy about 9 ms after a call (process CPU time over a sleep after
# its softmax forward+backward (2048, 64), `/tmp` script), so the pause is longer than that.
SETTLE_S = 0.012
# Then untimed calls for this long wake this implementation's own workers and caches (at least one call).
# After a pause the first call of either library took 2.5-3x its steady time and the next one 1.1-1.2x
# (medians by position, 60 samples, softmax forward+backward (2048, 64)); one untimed call left the second in
# the sample, which weighed most on a sample of few calls.
WAKE_S = 0.001


def _wake(fn) -> None:
    """Untimed calls of fn for WAKE_S seconds (at least one)."""
    end = time.perf_counter() + WAKE_S
    fn()
    while time.perf_counter() < end:
        fn()


def time_case(case: BenchCase, repeats: int) -> dict[str, float]:
    """Median seconds per call of each implementation, samples interleaved across implementations."""
    for fn in case.impls.values():                  # warm-up: compilation, caches, thread pools
        fn()
        fn()
    calls = {name: _calls_per_sample(fn) for name, fn in case.impls.items()}
    samples: dict[str, list[float]] = {name: [] for name in case.impls}
    for _ in range(repeats):
        for name, fn in case.impls.items():
            n = calls[name]
            time.sleep(SETTLE_S)
            _wake(fn)
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    return {name: statistics.median(s) for name, s in samples.items()}


# Import, first matmul and softmax, then the first call of each public kernel, small (serial
# path) and large (parallel path: 1024 x 256 is over the thread policy's threshold), float32.
_STARTUP_SCRIPT = """
import time
t0 = time.perf_counter()
import numpy as np
import tinygrad_attn.kernels as K
t1 = time.perf_counter()
x = np.ones((64, 64), np.float32)
K.softmax(K.matmul(x, x))
t2 = time.perf_counter()
rng = np.random.default_rng(0)
for n in (8, 1024):
    x = rng.standard_normal((n, n)).astype(np.float32)
    w = np.ones(n, np.float32)
    t = np.zeros(n, np.int64)
    K.matmul(x, x)
    K.matmul(x, x.T)
    y = K.softmax(x)
    K.softmax_backward(y, x)
    y = K.log_softmax(x)
    K.log_softmax_backward(y, x)
    loss, lse = K.cross_entropy_forward(x, t, -100)
    K.cross_entropy_backward(x, t, lse, -100, 1.0)
    K.gelu(x)
    K.gelu_backward(x, x)
    y, mean, rstd = K.layer_norm(x, w, w, 1e-5)
    K.layer_norm_backward(x, x, w, mean, rstd)
print(t1 - t0, t2 - t0, time.perf_counter() - t0)
"""


def measure_startup() -> dict[str, float]:
    """Seconds for the import alone, import + first matmul and softmax, and import + first call of every
    kernel; cold (empty caches) and warm. Both caches a second run finds are fresh ones here: Numba's, and
    Python's bytecode (PYTHONPYCACHEPREFIX; written even where PYTHONDONTWRITEBYTECODE is set, as on a
    learner's machine, where a second run never compiles the package's source again)."""
    result = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(cache_dir, "numba"),
                   PYTHONPYCACHEPREFIX=os.path.join(cache_dir, "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for label in ("cold", "warm"):
            out = subprocess.run([sys.executable, "-c", _STARTUP_SCRIPT], env=env, capture_output=True,
                                 text=True, check=True)
            import_s, first_s, total_s = (float(v) for v in out.stdout.split())
            result[f"{label}_import_s"] = import_s
            result[f"{label}_first_matmul_softmax_s"] = first_s
            result[f"{label}_total_s"] = total_s
    return result


def cpu_model() -> str:
    """The CPU's model name as the machine reports it (/proc/cpuinfo, else lscpu, else platform)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, object]:
    """What the numbers depend on: CPU, versions, threads, BLAS settings."""
    env: dict[str, object] = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
    }
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT",
                "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if var in os.environ:
            env[var] = os.environ[var]
    try:
        import torch
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        env["torch"] = None
    return env


def format_table(rows: list[dict[str, object]]) -> str:
    """Plain-text table: one line per (case, implementation)."""
    g, c, i = (max([len(title), *(len(str(r[title])) for r in rows)]) + 2 for title in ("group", "case", "impl"))
    header = f"{'group':<{g}}{'case':<{c}}{'impl':<{i}}{'median us':>12}{'GFLOP/s':>10}{'ratio':>8}"
    lines = [header, "-" * len(header)]
    last = None
    for r in rows:
        key = (r["group"], r["case"])
        group, case = (r["group"], r["case"]) if key != last else ("", "")
        last = key
        gflops = f"{r['gflops']:.1f}" if r["gflops"] is not None else ""
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        lines.append(f"{group:<{g}}{case:<{c}}{r['impl']:<{i}}{r['us']:>12.1f}{gflops:>10}{ratio:>8}")
    return "\n".join(lines)


def _stop(process) -> None:
    """Stop the --busy spinner (if any) and reap it."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def run_cases(cases: list[BenchCase], repeats: int, busy: bool) -> list[dict[str, object]]:
    """Time every case (beside a `while True: pass` process if `busy`); one row per implementation."""
    rows: list[dict[str, object]] = []
    spinner = None
    try:
        for case in cases:
            if busy and spinner is None:
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                print(f"--busy: timing beside a spinning process (pid {spinner.pid})")
                time.sleep(0.2)
            times = time_case(case, repeats)
            base = times.get(case.baseline)
            for impl, t in times.items():
                rows.append({"group": case.group, "case": case.name, "impl": impl, "us": t * 1e6,
                             "gflops": case.flops / t / 1e9 if case.flops else None,
                             "ratio": t / base if base else None, "baseline": case.baseline, **case.extra})
    finally:
        _stop(spinner)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the table (and write JSON with --json). Returns the exit code."""
    parser = Parser(prog="tinygrad-attn bench", description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write every number to this JSON file")
    parser.add_argument("--repeats", type=integer(1), default=None,
                        help="timed samples per implementation (default: 15, or 5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller cases and samples")
    parser.add_argument("--only", metavar="SUBSTRING", action="append",
                        help="only cases whose 'group case' contains this (repeat to allow several)")
    parser.add_argument("--no-startup", action="store_true", help="skip the cold/warm start-up measurement")
    parser.add_argument("--busy", action="store_true",
                        help="time the training steps beside a spinning process (one core busy); implies --no-startup")
    parser.add_argument("--no-tune", action="store_true",
                        help="leave the process settings at their defaults (no kernels.tune_process())")
    args = parser.parse_args(argv)
    check_output_file(parser, args.json, "--json")
    repeats = args.repeats or (5 if args.quick else 15)
    if _OPENBLAS_TIMEOUT not in os.environ:           # OpenBLAS reads it once, when numpy loads: rerun
        child = [sys.executable, "-m", "tinygrad_attn.cli.bench", *(sys.argv[1:] if argv is None else argv)]
        return subprocess.call(child, env={**os.environ, _OPENBLAS_TIMEOUT: "4"})

    modules = case_modules()                         # before tune_process: see case_modules
    tuned = {} if args.no_tune else runtime.tune_process()
    cases = collect_cases(modules, args.quick)
    chosen = [c for c in cases if not args.only or any(s.lower() in f"{c.group} {c.name}".lower() for s in args.only)]
    if not chosen:
        parser.error(f"argument --only: no case's 'group case' contains {' or '.join(map(repr, args.only))}; "
                     f"the groups are: {', '.join(dict.fromkeys(c.group for c in cases))}")
    if args.busy and not args.only:                  # --busy: the training steps, unless --only says otherwise
        chosen = [c for c in chosen if c.group == "training"]
    env = environment()
    env["busy"] = args.busy
    print(f"CPU: {env['cpu']}, {env['cores']} cores; numpy {env['numpy']}, numba {env['numba']}, "
          f"torch {env['torch']}; python {env['python']}")
    with threads.parallel_at_once():                 # time a long run's steady state, even on a fresh cache
        print(f"threads: {threads.describe()}; process settings: "
              + (", ".join(f"{k}={v}" for k, v in tuned.items()) if tuned else "defaults (--no-tune)"))
        print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
        rows = run_cases(chosen, repeats, args.busy)
    print(f"median time per call over {repeats} interleaved samples; ratio = time / time of the baseline (numba)"
          + ("; one core busy (--busy)" if args.busy else ""))
    print(format_table(rows))

    startup = None
    if not args.no_startup and not args.busy:
        startup = measure_startup()
        print("start-up, fresh processes (import tinygrad_attn.kernels; + first matmul and softmax; + first call "
              f"of every kernel): cold {startup['cold_import_s']:.2f} / {startup['cold_first_matmul_softmax_s']:.2f}"
              f" / {startup['cold_total_s']:.2f} s, warm {startup['warm_import_s']:.2f} / "
              f"{startup['warm_first_matmul_softmax_s']:.2f} / {startup['warm_total_s']:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "repeats": repeats, "results": rows, "startup": startup}, f, indent=2)
    return 0
