"""Every command answers a mistake in one line: the flag, what it allows, exit status 2 (1 for a failure
while running), never a traceback unless `--debug` is given; and its help shows each default once.

Most cases run in-process through `tinygrad_attn.cli.main`; a few run the real command in a subprocess.
Good-argument runs are tiny (the full runs are in test_train.py, test_walkthrough.py and test_bench.py).
"""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import cli
from tinygrad_attn.cli.args import CommandError
from tinygrad_attn.cli.bench import format_table

TINY_TRAIN = ["--steps", "2", "--batch-size", "4", "--eval-size", "4", "--d-model", "8", "--quiet"]
HAS_PROC = Path("/proc/self").is_dir()                         # /proc: a folder nothing can be created in


def call(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `tinygrad-attn ARGV...`, run in this process."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, argv: list[str], status: int = 2) -> str:
    """Run argv, check it fails with `status` and exactly one line on stderr, no traceback; return the line."""
    code, _, err = call(capsys, *argv)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{argv}: expected one line on stderr, got:\n{err}"
    assert code == status, f"{argv}: exit status {code}, expected {status}; stderr: {err}"
    prog = "tinygrad-attn" + (f" {argv[0]}" if argv[0] in cli.SUBCOMMANDS else "")
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A checkpoint from a two-step `train` run (reverse, length 8)."""
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["train", *TINY_TRAIN, "--out", str(out)]) == 0
    return out / "checkpoint.npz"


# ------------------------------------------------------------------ mistakes in the arguments: one line, status 2

BAD = [  # (argv, words the error line must contain: the flag and what it allows)
    (["train", "--seq-len", "0"], ["--seq-len", ">= 2", "'0'"]),
    (["train", "--seq-len", "1"], ["--seq-len", ">= 2"]),
    (["train", "--task", "lm", "--seq-len", "5000"], ["--seq-len", "at most"]),
    (["train", "--lr", "-1"], ["--lr", "> 0"]),
    (["train", "--lr", "nan"], ["--lr", "> 0"]),
    (["train", "--steps", "0"], ["--steps", ">= 1"]),
    (["train", "--steps", "two"], ["--steps", "integer"]),
    (["train", "--batch-size", "-4"], ["--batch-size", ">= 1"]),
    (["train", "--seed", "-1"], ["--seed", ">= 0"]),
    (["train", "--heads", "4"], ["--heads", "--model transformer"]),
    (["train", "--layers", "3"], ["--layers", "--model transformer"]),
    (["train", "--model", "transformer", "--heads", "5"], ["--heads", "divisible"]),
    (["train", "--task", "nope"], ["--task", "reverse", "lm"]),
    (["train", "--backend", "gpu"], ["--backend", "numba", "numpy"]),
    (["train", "--no-such-flag"], ["--no-such-flag"]),
    (["sample"], ["--checkpoint"]),
    (["sample", "--checkpoint", "x.npz", "--chars", "-3"], ["--chars", ">= 0"]),
    (["demo", "--seed", "-1"], ["--seed", ">= 0"]),
    (["demo", "--seed", "x"], ["--seed", "integer"]),
    (["gradcheck", "--only", "nothing"], ["--only", "'nothing'", "nn.Linear", "matmul"]),
    (["gradcheck", "--backend", "gpu"], ["--backend", "numba", "numpy"]),
    (["bench", "--repeats", "0"], ["--repeats", ">= 1"]),
    (["bench", "--json", "/no/such/folder/x.json"], ["--json", "/no/such/folder", "does not exist"]),
    (["bench", "--json", "."], ["--json", "is a folder"]),
    (["sample", "--checkpoint", "x.npz", "--png", "/no/such/folder/x.png"], ["--png", "does not exist"]),
    (["nosuchcommand"], ["COMMAND", "train", "gradcheck"]),
]


@pytest.mark.parametrize("argv, words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_argument_is_one_line_naming_the_flag(capsys, argv, words):
    line = one_line_error(capsys, argv)
    for word in words:
        assert word in line, f"{argv}: {word!r} not in {line!r}"


def test_an_output_folder_that_is_a_file_is_a_usage_error(capsys, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for command in ("train", "demo"):
        assert "--out" in one_line_error(capsys, [command, "--out", str(a_file)])


def test_bench_only_matching_nothing_fails_before_any_timing(capsys, monkeypatch):
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")            # run here, not in the bench's child process
    line = one_line_error(capsys, ["bench", "--only", "nosuchcase"])
    assert "--only" in line and "'nosuchcase'" in line and "matmul" in line


def test_gradcheck_only_runs_the_matching_checks(capsys):
    code, out, err = call(capsys, "gradcheck", "--only", "MSE")     # ignoring case
    assert code == 0 and err == ""
    assert "F.mse_loss" in out and "nn.Linear" not in out and "all passed" in out


# ------------------------------------------------------------------ sample --checkpoint: what is wrong with the file


def test_sample_names_what_is_wrong_with_the_checkpoint(capsys, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    plain = tmp_path / "plain.npz"
    ta.save({"w": np.ones(3)}, plain)                              # ta.save, but not by train: no config
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.ones(2))
    (tmp_path / "run").mkdir()
    cases = {
        text: "is not a checkpoint",
        plain: "saved by ta.save but not by `tinygrad-attn train`",
        foreign: "not a valid tinygrad_attn checkpoint",
        tmp_path / "run": "is a folder",
        tmp_path / "missing.npz": "no such file",
    }
    for path, words in cases.items():
        line = one_line_error(capsys, ["sample", "--checkpoint", str(path)])
        assert "--checkpoint" in line and str(path) in line and words in line, line
        assert "allow_pickle" not in line and "Errno" not in line and "KeyError" not in line, line


def test_sample_on_a_run_folder_suggests_its_checkpoint(capsys, checkpoint):
    line = one_line_error(capsys, ["sample", "--checkpoint", str(checkpoint.parent)])
    assert f"did you mean {checkpoint}" in line


def test_sample_checks_input_and_chars_against_the_checkpoint(capsys, checkpoint):
    line = one_line_error(capsys, ["sample", "--checkpoint", str(checkpoint), "--input", "3 1 4"])
    assert "--input" in line and "exactly 8 tokens" in line
    line = one_line_error(capsys, ["sample", "--checkpoint", str(checkpoint), "--chars", "5"])
    assert "--chars" in line and "lm" in line


def test_good_arguments_run(capsys, checkpoint, tmp_path):
    code, out, err = call(capsys, "sample", "--checkpoint", str(checkpoint), "--input", "3 1 4 1 5 9 2 6")
    assert code == 0 and "Traceback" not in err
    assert "expected:   6 2 9 5 1 4 1 3" in out
    code, out, _ = call(capsys, "train", *TINY_TRAIN, "--model", "transformer", "--heads", "2", "--layers", "1",
                        "--task", "sort", "--seq-len", "4", "--out", str(tmp_path / "t"))
    assert code == 0 and "1 layers x 2 heads" in out and (tmp_path / "t" / "checkpoint.npz").is_file()


# ------------------------------------------------------------------ failures while running: one line, status 1


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc, a folder nothing can be created in")
def test_an_unwritable_output_folder_is_one_line_and_status_1(capsys, checkpoint):
    for argv in (["train", "--out", "/proc/nope"], ["demo", "--out", "/proc/nope"]):
        line = one_line_error(capsys, argv, status=1)
        assert "--out" in line and "/proc/nope" in line
    line = one_line_error(capsys, ["sample", "--checkpoint", str(checkpoint), "--png", "/proc/a.png"], 1)
    assert "/proc/a.png" in line                                  # fails at the end, after the printout


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc, a folder nothing can be created in")
def test_debug_shows_the_exception(capsys):
    with pytest.raises(CommandError, match="/proc/nope"):
        cli.main(["--debug", "train", "--out", "/proc/nope"])
    with pytest.raises(CommandError, match="/proc/nope"):
        cli.main(["train", "--out", "/proc/nope", "--debug"])


def test_the_wrapper_turns_any_exception_into_one_line(capsys):
    def broken():
        raise RuntimeError("something\nbroke")
    assert cli.run("tinygrad-attn x", broken) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tinygrad-attn x: error: RuntimeError: something")
    assert "--debug" in err
    with pytest.raises(RuntimeError):
        cli.run("tinygrad-attn x", broken, debug=True)

    def interrupted():
        raise KeyboardInterrupt
    assert cli.run("tinygrad-attn x", interrupted) == 130


# ------------------------------------------------------------------ the real command, in a subprocess


@pytest.mark.parametrize("argv, status", [
    (["train", "--seq-len", "0"], 2),
    (["sample", "--checkpoint", "."], 2),
    (["--debug", "train", "--task", "x"], 2),          # --debug changes nothing for a usage error
])
def test_the_installed_command_prints_one_line(argv, status):
    done = subprocess.run([sys.executable, "-m", "tinygrad_attn", *argv], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_bench_child_process_reports_a_filter_that_matches_nothing():
    """The bench reruns itself in a child process: its one line and status come back, and no timing ran."""
    done = subprocess.run([sys.executable, "-m", "tinygrad_attn.cli.bench", "--only", "nosuchcase"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "--only" in done.stderr
    assert "environment:" not in done.stdout and "start-up" not in done.stdout


# ------------------------------------------------------------------ help texts


def option_helps(text: str) -> dict[str, str]:
    """The help of each flag in an argparse help text (whitespace joined), keyed by its first spelling."""
    options = text.split("options:", 1)[1]
    return {block.split()[0].rstrip(","): " ".join(block.split())
            for block in re.split(r"\n(?=  -)", options) if block.strip()}


COMMANDS = ["train", "sample", "demo", "gradcheck", "bench", "exercise"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_each_default_once(capsys, command):
    code, out, _ = call(capsys, command, "--help")
    assert code == 0 and out.startswith(f"usage: tinygrad-attn {command}")
    helps = option_helps(out)
    assert "--debug" in helps
    for flag, text in helps.items():
        assert text.count("default") <= 1, f"{command} {flag}: {text}"
        assert "(default: None)" not in text and "(default: False)" not in text, f"{command} {flag}: {text}"
        assert len(text.split()) > 1 + (flag == "-h"), f"{command} {flag} has no help"


def test_help_shows_the_defaults(capsys):
    helps = option_helps(call(capsys, "train", "--help")[1])
    assert "(default: 200)" in helps["--steps"] and "(default: reverse)" in helps["--task"]
    assert "(default: the task's own)" in helps["--seq-len"] and "(default: 0)" in helps["--seed"]
    helps = option_helps(call(capsys, "gradcheck", "--help")[1])
    assert "kernels" in helps["--backend"] and "(default: " in helps["--backend"]
    helps = option_helps(call(capsys, "sample", "--help")[1])
    assert "(default: 60; lm checkpoints only)" in helps["--chars"]


def test_bench_help_through_python_m():
    done = subprocess.run([sys.executable, "-m", "tinygrad_attn.cli.bench", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: tinygrad-attn bench")


def test_bench_table_columns_fit_the_longest_case_name():
    name = "small-op step ((x*y+z).relu().sum()).backward() (8,16)"
    rows = [{"group": "training", "case": name, "impl": impl, "us": 12.5, "gflops": None, "ratio": 1.0}
            for impl in ("numba", "unfused-long")]
    first, second = format_table(rows).splitlines()[2:]
    assert re.search(r"\(8,16\)\s+numba\s", first) and re.search(r"\s+unfused-long\s+12\.5", second)
    assert first.index("numba") == second.index("unfused-long")


# ------------------------------------------------------------------ `exercise`, when it is there


def test_exercise_answers_in_one_line(capsys):
    code, out, err = call(capsys, "exercise", "list")
    assert code == 0 and out.strip() and "Traceback" not in err
    one_line_error(capsys, ["exercise", "--no-such-flag"])
    code, _, err = call(capsys, "exercise", "solution", "no-such-exercise")
    assert code == 2 and err.startswith("tinygrad-attn exercise: error: unknown exercise"), err
    assert len(err.strip().splitlines()) == 1, err
    assert call(capsys, "exercise", "start", "softmax", "--out", "/proc/nope")[0] == 1   # cannot write: running


def test_a_closed_pipe_is_not_a_traceback():
    """`tinygrad-attn exercise solution NAME | head -0`: the reader leaves early; no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "tinygrad_attn", "exercise", "solution", "sdpa"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    proc.stdout.close()                                        # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in err, err
