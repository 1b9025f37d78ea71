"""`tinygrad-attn exercise`: graded backprop exercises, backprop-ninja style, for attention.

    tinygrad-attn exercise list                    every exercise, its goal, and your status
    tinygrad-attn exercise start NAME [--out DIR]  write DIR/NAME.py (default ./exercises): the backward is yours
    tinygrad-attn exercise check NAME [PATH]       grade it, diagnose wrong parts; exit 0 iff every part is right
    tinygrad-attn exercise solution NAME           print a reference solution

Each exercise is one module here with NAME, GOAL, SOLUTION (the reference file; the stub is made
from it by `stub`), NEEDS (the names the learner's file must define), MISTAKES (the names of the
mistakes it diagnoses) and `grade(module)`, which returns one `grading.Result` per part.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path
from types import ModuleType

from ..args import CommandError, Parser, make_folder
from .grading import LearnerError, load, report

NAMES = ("softmax", "matmul", "cross_entropy", "layer_norm", "sdpa", "self_attention", "logsumexp", "new_layer")
DEFAULT_DIR = Path("exercises")
STATUS_FILE = ".exercise-status.json"                          # in the exercises folder: each file's last check
_BLOCK = re.compile(r"^( *)# >>> (.*)\n(?:.*\n)*?\1# <<<\n", re.MULTILINE)


def exercise(name: str) -> ModuleType:
    """The module of exercise `name` (one of NAMES)."""
    return importlib.import_module(f"{__name__}.{name}")


def stub(solution: str) -> str:
    """The learner's file: each `# >>> STUB-LINE ... # <<<` block of the solution becomes STUB-LINE."""
    return _BLOCK.sub(lambda m: f"{m.group(1)}{m.group(2)}\n", solution)


def solution(text: str) -> str:
    """The reference file to print: the solution with its block markers removed."""
    return re.sub(r"^ *# (>>> .*|<<<)\n", "", text, flags=re.MULTILINE)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="tinygrad-attn exercise", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    ls = sub.add_parser("list", help="every exercise, its goal, and your status")
    ls.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where your exercise files are")
    st = sub.add_parser("start", help="write the stub file NAME.py for you to fill in")
    st.add_argument("name", metavar="NAME")
    st.add_argument("--out", type=Path, default=DEFAULT_DIR, help="the folder to write NAME.py into")
    st.add_argument("--force", action="store_true", help="overwrite an existing file")
    ch = sub.add_parser("check", help="grade your file (exit 0 when every part is right, 1 otherwise)")
    ch.add_argument("name", metavar="NAME")
    ch.add_argument("path", metavar="PATH", type=Path, nargs="?",
                    help=f"your file ({DEFAULT_DIR}/NAME.py if not given)")
    so = sub.add_parser("solution", help="print a reference solution")
    so.add_argument("name", metavar="NAME")
    return p


def _fail(message: str) -> int:
    print(f"tinygrad-attn exercise: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action is None:
        build_parser().print_help()
        return 0
    if args.action == "list":
        return list_exercises(args.dir)
    if args.name not in NAMES:
        return _fail(f"unknown exercise {args.name!r}; choose one of {', '.join(NAMES)}")
    ex = exercise(args.name)
    if args.action == "solution":
        print(solution(ex.SOLUTION), end="")
        return 0
    if args.action == "start":
        return start(ex, args.out, args.force)
    return check(ex, args.path or DEFAULT_DIR / f"{args.name}.py")


def list_exercises(folder: Path) -> int:
    """Print every exercise, its goal, and the learner's status from the files in `folder`."""
    status = _read_status(folder)
    width = max(map(len, NAMES))
    for name in NAMES:
        path = folder / f"{name}.py"
        if not path.is_file():
            state = "not started"
        else:
            last = status.get(name) if isinstance(status.get(name), dict) else {}
            if last.get("mtime") != path.stat().st_mtime:
                state = f"started at {path}" + (" (edited since its last check)" if last else "")
            else:
                state = "passed" if last.get("passed") else f"started at {path} (last check: wrong)"
        print(f"{name:<{width}}  {exercise(name).GOAL}\n{'':<{width}}  status: {state}")
    print(f"\nstart one with `tinygrad-attn exercise start NAME`; files are looked for in {folder}/")
    return 0


def start(ex: ModuleType, folder: Path, force: bool) -> int:
    """Write the stub of `ex` to folder/NAME.py (never over an existing file unless `force`)."""
    path = folder / f"{ex.NAME}.py"
    if path.exists() and not force:
        return _fail(f"{path} exists already; edit it, or pass --force to start over")
    make_folder(folder)                                        # a failure while running: one line, status 1
    try:
        path.write_text(stub(ex.SOLUTION))
    except OSError as e:
        raise CommandError(f"cannot write {path}: {e.strerror or e}") from e
    print(f"wrote {path}: {ex.GOAL}\nfill in the parts that raise NotImplementedError, then run "
          f"`tinygrad-attn exercise check {ex.NAME}{'' if folder == DEFAULT_DIR else ' ' + str(path)}`")
    return 0


def check(ex: ModuleType, path: Path) -> int:
    """Grade the learner's file at `path` and print the table: 0 when every part is right, 1 if not, 2 if no file."""
    if not path.is_file():
        return _fail(f"no file {path} (run `tinygrad-attn exercise start {ex.NAME}` to write it)")
    print(f"checking {path} against exercise {ex.NAME}: {ex.GOAL}")
    try:
        learner = load(path.resolve())
        missing = [name for name in ex.NEEDS if not hasattr(learner, name)]
        if missing:
            raise LearnerError(f"{path} does not define {', '.join(missing)} (`tinygrad-attn exercise start "
                               f"{ex.NAME}` writes a file that does)")
        results = ex.grade(learner)
    except LearnerError as e:
        print(f"{ex.NAME}: {e}")
        results = None
    passed = results is not None and report(ex.NAME, results)
    _write_status(path, ex.NAME, passed)
    return 0 if passed else 1


def _read_status(folder: Path) -> dict:
    try:
        status = json.loads((folder / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def _write_status(path: Path, name: str, passed: bool) -> None:
    """Remember the result next to the file, for `list` (only when it is the default file name)."""
    if path.name != f"{name}.py":
        return
    status = _read_status(path.parent)
    status[name] = {"passed": passed, "mtime": path.stat().st_mtime}
    try:
        (path.parent / STATUS_FILE).write_text(json.dumps(status, indent=1))
    except OSError:
        pass                                                   # a read-only folder: `list` just knows less
