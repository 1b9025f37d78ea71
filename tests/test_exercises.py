"""`tinygrad-attn exercise`: every stub fails its check, every solution passes, every planted mistake is named."""

import ast
import os
import subprocess
import sys

import pytest

from tinygrad_attn.cli import main
from tinygrad_attn.cli.exercises import NAMES, exercise, grading, solution, stub

# (exercise, the mistake's name, the text of the solution it replaces, the planted text). Each plants one
# mistake a learner makes into the reference solution; `check` must fail and name that mistake.
PLANTED = [
    ("softmax", grading.NO_ROWSUM, "ds = y * (dy - (y * dy).sum(axis=-1, keepdims=True))", "ds = y * dy"),
    ("softmax", "the rowsum over the wrong axis", "(y * dy).sum(axis=-1, keepdims=True)",
     "(y * dy).sum(axis=-2, keepdims=True)"),
    ("softmax", "the factor y forgotten", "ds = y * (dy -", "ds = (dy -"),
    ("softmax", grading.SIGN, "ds = y * (dy", "ds = -y * (dy"),
    ("softmax", grading.FACTOR, "ds = y * (dy", "ds = 2 * y * (dy"),
    ("matmul", grading.UNBROADCAST, "return ta.unbroadcast(da, a.shape), ta.unbroadcast(db, b.shape)",
     "return da, db"),
    ("matmul", grading.TRANSPOSED, "return ta.unbroadcast(da, a.shape), ta.unbroadcast(db, b.shape)",
     "return ta.unbroadcast(da, a.shape), np.swapaxes(ta.unbroadcast(db, b.shape), -1, -2)"),
    ("cross_entropy", grading.MASK, "    dlogits[~kept] = 0 ", "    pass "),
    ("cross_entropy", grading.FACTOR, "return dlogits / kept.sum()", "return dlogits"),
    ("cross_entropy", "the mean over all rows", "return dlogits / kept.sum()", "return dlogits / len(targets)"),
    ("cross_entropy", grading.SIGN, "return dlogits / kept.sum()", "return -dlogits / kept.sum()"),
    ("cross_entropy", "the one-hot term forgotten", "dlogits[rows, targets[rows]] -= 1", "pass"),
    ("layer_norm", "the path through the mean forgotten", "(dxhat - dxhat.mean(axis=-1, keepdims=True) -", "(dxhat -"),
    ("layer_norm", "the path through the variance forgotten",
     " - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))", ")"),
    ("layer_norm", "the factor rstd forgotten", "dx = rstd * (dxhat - dxhat.mean", "dx = (dxhat - dxhat.mean"),
    ("layer_norm", grading.UNBROADCAST, "db = dy.sum(axis=rows)", "db = dy"),
    ("sdpa", grading.TRANSPOSED, "return P.T @ dH", "return P @ dH"),
    ("sdpa", grading.TRANSPOSED, "return dS.T @ Q * scale", "return dS @ Q * scale"),
    ("sdpa", grading.NO_ROWSUM, "return P * (dP - (dP * P).sum(axis=-1, keepdims=True))", "return P * dP"),
    ("sdpa", "the factor P forgotten", "return P * (dP - (dP * P).sum(axis=-1, keepdims=True))",
     "return dP - (dP * P).sum(axis=-1, keepdims=True)"),
    ("sdpa", grading.NO_SCALE, "return dS @ K * scale", "return dS @ K"),
    ("sdpa", grading.MASK, "    dS = np.where(allowed, dS, 0.0) ", "    pass "),   # the first: grad_Q's
    ("sdpa", grading.SIGN, "return dH @ V.T", "return -dH @ V.T"),
    ("self_attention", grading.UNBROADCAST, "dW_q = (t(X) @ dQ).sum(axis=0)", "dW_q = t(X) @ dQ"),
    ("self_attention", grading.NO_SCALE, "scale = 1 / math.sqrt(W_q.shape[-1])", "scale = 1.0"),
    ("self_attention", grading.NO_ROWSUM, "dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))", "dS = P * dP"),
    ("self_attention", "dW_q and dW_k swapped", "return dW_q, dW_k, dW_v", "return dW_k, dW_q, dW_v"),
    ("self_attention", grading.TRANSPOSED, "dW_v = (t(X) @ dV).sum(axis=0)", "dW_v = (t(dV) @ X).sum(axis=0)"),
    ("logsumexp", "an unstable forward (exp overflows)", "m = a.max(axis=axis, keepdims=True)",
     "m = np.zeros_like(a.max(axis=axis, keepdims=True))"),
    ("logsumexp", "the upstream gradient g forgotten", "return (g * np.exp(", "return (np.exp("),
    ("logsumexp", grading.SIGN, "return (g * np.exp(", "return (-g * np.exp("),
    ("new_layer", grading.NO_SCALE, "dq = ds @ k * self.scale", "dq = ds @ k"),
    ("new_layer", grading.NO_ROWSUM, "ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))", "ds = p * dp"),
    ("new_layer", grading.TRANSPOSED, "dv = t(p) @ dH", "dv = p @ dH"),
]
THE_USUAL_MISTAKES = (grading.TRANSPOSED, grading.NO_SCALE, grading.NO_ROWSUM, grading.SIGN, grading.UNBROADCAST,
                      grading.MASK, grading.FACTOR)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["exercise", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_solution(tmp_path, name: str, old: str | None = None, new: str | None = None):
    text = solution(exercise(name).SOLUTION)
    if old is not None:
        assert old in text, f"the planted mistake's original text is not in {name}'s solution: {old!r}"
        text = text.replace(old, new, 1)
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", NAMES)
def test_every_stub_fails_its_check(name, tmp_path, capsys):
    code, out, _ = run(capsys, "start", name, "--out", str(tmp_path))
    assert code == 0 and (tmp_path / f"{name}.py").is_file()
    text = (tmp_path / f"{name}.py").read_text()
    ast.parse(text)                                            # the stub is valid Python
    assert "NotImplementedError" in text and "# >>>" not in text and "check " + name in text
    assert text == stub(exercise(name).SOLUTION) and len(text) < len(solution(exercise(name).SOLUTION))
    code, out, _ = run(capsys, "check", name, str(tmp_path / f"{name}.py"))
    assert code == 1
    assert "not written yet" in out and f"{name}: " in out.splitlines()[-1] and "parts wrong" in out


@pytest.mark.parametrize("name", NAMES)
def test_every_solution_passes(name, tmp_path, capsys):
    code, printed, _ = run(capsys, "solution", name)
    assert code == 0 and printed == solution(exercise(name).SOLUTION)
    assert "# >>>" not in printed and "# <<<" not in printed and "NotImplementedError" not in printed
    assert max(map(len, printed.splitlines())) <= 120          # the project's line length, in the learner's file too
    path = tmp_path / f"{name}.py"
    path.write_text(printed)
    code, out, _ = run(capsys, "check", name, str(path))
    assert code == 0, out
    assert out.splitlines()[-1].startswith(f"{name}: all ") and "FAIL" not in out and "diagnosis" not in out
    assert "gradcheck" in out and "| pass" in out


@pytest.mark.parametrize("name, mistake, old, new", PLANTED, ids=[f"{p[0]}-{p[1]}" for p in PLANTED])
def test_planted_mistake_is_diagnosed_by_name(name, mistake, old, new, tmp_path, capsys):
    path = write_solution(tmp_path, name, old, new)
    code, out, _ = run(capsys, "check", name, str(path))
    assert code == 1, out
    assert f'diagnosis: matches "{mistake}":' in out, out


def test_every_listed_mistake_is_planted():
    for name in NAMES:
        planted = {m for n, m, _, _ in PLANTED if n == name}
        assert set(exercise(name).MISTAKES) <= planted, name
    assert set(THE_USUAL_MISTAKES) <= {m for _, m, _, _ in PLANTED}


def test_the_table_reads_like_makemores_cmp(tmp_path, capsys):
    path = write_solution(tmp_path, "softmax", *PLANTED[0][2:])
    code, out, _ = run(capsys, "check", "softmax", str(path))
    row = next(line for line in out.splitlines() if line.startswith("ds "))
    assert code == 1 and "| exact: False | approximate: False | maxdiff: " in row
    assert float(row.rsplit("maxdiff: ", 1)[1]) > 1e-3
    assert "gradcheck" in out and "FAIL" in out and "disagrees at index" in out   # ta.gradcheck's own message


def test_training_part_fails_for_a_layer_that_does_not_attend(tmp_path, capsys, monkeypatch):
    """Right gradients are not enough: a layer that never looks at other positions cannot learn `reverse`."""
    from tinygrad_attn.cli.exercises import new_layer
    monkeypatch.setattr(new_layer, "MAX_STEPS", 20)            # enough for the solution, and fast
    path = write_solution(tmp_path, "new_layer", "return Attend.apply(q, k, v, scale=self.scale)", "return v")
    code, out, _ = run(capsys, "check", "new_layer", str(path))
    assert code == 1 and "gradcheck Layer        | pass" in out and "train reverse          | FAIL" in out
    path = write_solution(tmp_path, "new_layer")
    assert run(capsys, "check", "new_layer", str(path))[0] == 0


def test_list_shows_each_status(tmp_path, capsys):
    folder = tmp_path / "exercises"
    code, out, _ = run(capsys, "list", "--dir", str(folder))
    assert code == 0 and all(name in out for name in NAMES) and out.count("status: not started") == len(NAMES)
    assert exercise("sdpa").GOAL in out
    run(capsys, "start", "softmax", "--out", str(folder))
    out = run(capsys, "list", "--dir", str(folder))[1]
    assert f"status: started at {folder / 'softmax.py'}" in out and out.count("not started") == len(NAMES) - 1
    run(capsys, "check", "softmax", str(folder / "softmax.py"))
    assert "(last check: wrong)" in run(capsys, "list", "--dir", str(folder))[1]
    write_solution(folder, "softmax")
    stat = (folder / "softmax.py").stat()
    os.utime(folder / "softmax.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))   # an edit, surely a new mtime
    assert "(edited since its last check)" in run(capsys, "list", "--dir", str(folder))[1]
    assert run(capsys, "check", "softmax", str(folder / "softmax.py"))[0] == 0
    lines = run(capsys, "list", "--dir", str(folder))[1].splitlines()
    statuses = [lines[i + 1].strip() for i, line in enumerate(lines) if line.split(" ")[0] in NAMES]
    assert statuses == ["status: passed"] + ["status: not started"] * (len(NAMES) - 1)


def test_start_refuses_to_overwrite_unless_forced(tmp_path, capsys):
    assert run(capsys, "start", "matmul", "--out", str(tmp_path))[0] == 0
    (tmp_path / "matmul.py").write_text("# my work\n")
    code, _, err = run(capsys, "start", "matmul", "--out", str(tmp_path))
    assert code == 2 and "exists" in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "matmul.py").read_text() == "# my work\n"
    assert run(capsys, "start", "matmul", "--out", str(tmp_path), "--force")[0] == 0
    assert "NotImplementedError" in (tmp_path / "matmul.py").read_text()


def test_start_writes_to_exercises_by_default(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "start", "sdpa")[0] == 0 and (tmp_path / "exercises" / "sdpa.py").is_file()
    code, out, _ = run(capsys, "check", "sdpa")                # PATH defaults to ./exercises/sdpa.py
    assert code == 1 and "checking exercises/sdpa.py" in out


@pytest.mark.parametrize("argv", [["start", "nope"], ["check", "nope"], ["solution", "nope"], ["check", "softmax",
                                  "/no/such/file.py"], ["start"], ["frobnicate"], ["list", "--bogus"]])
def test_bad_arguments_are_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:                        # argparse errors exit; ours return 2
        raise SystemExit(main(["exercise", *argv]))
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("text, says", [("def oops(:\n", "SyntaxError"), ("import numpy\nraise KeyError('x')\n",
                                        "KeyError"), ("x = 1\n", "does not define softmax, softmax_backward")])
def test_a_broken_learner_file_is_a_wrong_answer_not_a_crash(text, says, tmp_path, capsys):
    path = tmp_path / "softmax.py"
    path.write_text(text)
    code, out, err = run(capsys, "check", "softmax", str(path))
    assert code == 1 and says in out and "Traceback" not in out + err


def test_the_command_line(tmp_path):
    """Once through the installed entry point: a wrong answer exits 1, a bad NAME exits 2 without a traceback."""
    path = write_solution(tmp_path, "softmax", *PLANTED[0][2:])
    cmd = [sys.executable, "-m", "tinygrad_attn", "exercise", "check"]
    wrong = subprocess.run([*cmd, "softmax", str(path)], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and f'matches "{grading.NO_ROWSUM}"' in wrong.stdout
    bad = subprocess.run([*cmd, "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown exercise 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_stub_replaces_only_the_marked_blocks():
    text = "def f():\n    # >>> raise NotImplementedError\n    return 1\n    # <<<\n\nx = 2\n"
    assert stub(text) == "def f():\n    raise NotImplementedError\n\nx = 2\n"
    assert solution(text) == "def f():\n    return 1\n\nx = 2\n"
