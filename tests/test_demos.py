"""Each script in demos/ runs as a user would run it (`python demos/NAME.py`), tiny, and prints what it should."""

import os
import re
import subprocess
import sys
from pathlib import Path

DEMOS = Path(__file__).resolve().parent.parent / "demos"


def run_demo(name: str, *args: str, cwd: Path) -> str:
    """Run demos/NAME with a tiny step count in `cwd`; return its stdout (the test fails on a non-zero exit)."""
    result = subprocess.run([sys.executable, str(DEMOS / name), *args], cwd=cwd, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})
    assert result.returncode == 0, f"{name} exited with {result.returncode}:\n{result.stderr[-3000:]}"
    return result.stdout


def test_every_demo_is_tested():
    assert sorted(p.name for p in DEMOS.glob("*.py")) == sorted(CASES)


CASES = {
    "seed_walkthrough.py": ["--steps", "50"],
    "train_sorter.py": ["--steps", "3", "--out", "plots"],
    "char_transformer.py": ["--steps", "2", "--length", "10"],
    "custom_op.py": ["--steps", "40"],
}


def test_seed_walkthrough(tmp_path):
    out = run_demo("seed_walkthrough.py", *CASES["seed_walkthrough.py"], cwd=tmp_path)
    fractions = [float(f) for f in re.findall(r"d = +\d+: +(\d+\.\d)% of rows", out)]
    assert len(fractions) == 4 and fractions[0] > 50 and fractions[-1] > 95   # chance would be 33.3%
    assert "the same as nn.SelfAttention and F.scaled_dot_product_attention" in out


def test_train_sorter(tmp_path):
    out = run_demo("train_sorter.py", *CASES["train_sorter.py"], cwd=tmp_path)
    assert re.search(r"sort: token accuracy \d\.\d+, whole sequences right \d\.\d+", out)
    assert out.count("last layer, head") == 2
    assert (tmp_path / "plots" / "sorter.png").read_bytes()[:4] == b"\x89PNG"


def test_train_sorter_reverse(tmp_path):
    out = run_demo("train_sorter.py", "--task", "reverse", "--steps", "2", cwd=tmp_path)
    assert "reverse: token accuracy" in out


def test_char_transformer(tmp_path):
    out = run_demo("char_transformer.py", *CASES["char_transformer.py"], cwd=tmp_path)
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)", out)]
    assert len(losses) == 2 and all(0 < v < 10 for v in losses)
    generated = out.split("generated:\n")[1].rstrip("\n")
    assert generated.startswith("each token ") and len(generated) == len("each token ") + 10


def test_custom_op(tmp_path):
    out = run_demo("custom_op.py", *CASES["custom_op.py"], cwd=tmp_path)
    assert "gradcheck passed: True" in out
    custom, builtin = re.findall(r"^(?:AttentionScores|built-in ops)\s*: (.*)$", out, flags=re.M)
    assert custom == builtin                                   # the same gradients, printed to 5 decimals
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)", out)]
    assert losses[-1] < losses[0]                              # the op trains

