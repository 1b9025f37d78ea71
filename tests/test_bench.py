"""`tinygrad-attn bench` runs end to end and writes what it prints (timings themselves are not tested)."""

import json
import os
import subprocess
import sys

import pytest


def test_bench_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "tinygrad_attn.cli", "bench", "--only", "small-op", "--repeats", "1",
           "--no-startup", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "small-op step" in done.stdout
    report = json.loads(out.read_text())
    assert report["environment"]["OPENBLAS_THREAD_TIMEOUT"] == "4"   # the bench reran itself with it set
    rows = report["results"]
    assert rows and all(r["case"].startswith("small-op step") and r["us"] > 0 for r in rows)
    assert {r["impl"] for r in rows} >= {"numba"}
    assert next(r for r in rows if r["impl"] == "numba")["ratio"] == 1.0
    header = done.stdout.splitlines()
    assert header[0].startswith("CPU: ") and "cores" in header[0] and "numba" in header[0]   # where it ran
    assert header[1].startswith("threads: ") and "OpenMP wait" in header[1]
    assert report["environment"]["cpu"] and report["environment"]["cores"] >= 1


def test_bench_busy_starts_and_stops_its_spinner(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "tinygrad_attn.cli", "bench", "--busy", "--only", "small-op", "--repeats", "1",
           "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = next(s for s in done.stdout.splitlines() if s.startswith("--busy: timing beside a spinning process"))
    pid = int(line.rsplit("pid ", 1)[1].rstrip(")"))
    assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    report = json.loads(out.read_text())
    assert report["environment"]["busy"] is True and report["startup"] is None
    assert report["results"] and all(r["case"].startswith("small-op step") for r in report["results"])


def test_pytorch_loads_before_the_process_settings():
    """PyTorch's OpenMP runtime reads the environment when it loads: the bench must import it before
    `tune_process` sets our GOMP_SPINCOUNT, or the baseline runs with our wait setting."""
    pytest.importorskip("torch")
    script = (
        "import sys\n"
        "from tinygrad_attn.kernels import runtime\n"
        "from tinygrad_attn.cli import bench\n"
        "assert 'torch' not in sys.modules\n"
        "def tune():\n"
        "    print('torch loaded:', 'torch' in sys.modules)\n"
        "    raise SystemExit(0)\n"
        "runtime.tune_process = tune\n"
        "bench.main(['--only', 'small-op', '--repeats', '1', '--no-startup'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OPENBLAS_THREAD_TIMEOUT": "4"})
    assert done.returncode == 0, done.stderr
    assert "torch loaded: True" in done.stdout


def test_calls_per_sample_is_set_by_the_fastest_call_not_the_first():
    import time

    from tinygrad_attn.cli import bench
    pauses = iter([0.005] + [0.0] * 10)                 # a first call that met sleeping workers, then fast ones
    assert bench._calls_per_sample(lambda: time.sleep(next(pauses))) > 1
    calls = []
    assert bench._calls_per_sample(lambda: (calls.append(1), time.sleep(0.003)), target_s=1e-4) == 1
    assert len(calls) == 1                              # a call longer than 25 samples is not tried again


def test_each_sample_is_preceded_by_at_least_one_untimed_call(monkeypatch):
    from tinygrad_attn.cli import bench
    calls = []
    monkeypatch.setattr(bench, "WAKE_S", 0.0)
    bench._wake(lambda: calls.append(1))
    assert calls == [1]
