"""`tinygrad-attn bench` runs end to end and writes what it prints (timings themselves are not tested)."""

import json
import subprocess
import sys


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
