"""The `tinygrad-attn` command: train, sample, demo, gradcheck, bench.

Each subcommand is a `main(argv) -> int` function in its own module, imported only when that
subcommand runs, so `tinygrad-attn --help` stays fast. `main` is the one place that turns an error into
one line on stderr and an exit status: 2 for a mistake in the arguments (the commands' parsers,
`args.Parser`, print their own one line), 1 for a failure while running, 130 for Ctrl-C.
`tinygrad-attn --debug COMMAND ...` (or `COMMAND ... --debug`) shows the traceback instead.
"""

import importlib
import os
import sys
from collections.abc import Callable

from .args import CommandError, Parser

_CLI = "tinygrad_attn.cli."
SUBCOMMANDS = {  # name: (module, function, one-line help)
    "train": (_CLI + "train", "main", "train a tiny attention model on a built-in task"),
    "sample": (_CLI + "train", "sample_main", "run a trained checkpoint on an input and show its attention"),
    "demo": (_CLI + "walkthrough", "main", "walk through self-attention step by step (x1, x2, x3 -> h1, h2, h3)"),
    "gradcheck": (_CLI + "checks", "main", "check every registered op and layer against finite differences"),
    "bench": (_CLI + "bench", "main", "time kernels and layers against numpy (and PyTorch if installed)"),
    "exercise": (_CLI + "exercises", "main", "graded backprop exercises: list, start NAME, check NAME, solution NAME"),
}


def main(argv: list[str] | None = None) -> int:
    """Run `tinygrad-attn [--debug] COMMAND ARGS...`; returns the exit status (`--help` and a usage error
    raise SystemExit, as argparse does)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = bool(argv) and argv[0] == "--debug"
    argv = argv[1:] if debug else argv
    if argv and argv[0] in SUBCOMMANDS:
        if argv[0] != "bench":                  # (bench makes the call itself, unless --no-tune)
            from tinygrad_attn.kernels import tune_process
            tune_process()                      # this process is ours: brief OpenMP spin, malloc thresholds
        module, function, _ = SUBCOMMANDS[argv[0]]
        command = lambda: getattr(importlib.import_module(module), function)(argv[1:])  # noqa: E731
        return run(f"tinygrad-attn {argv[0]}", command, debug or "--debug" in argv[1:])
    parser = Parser(prog="tinygrad-attn", description="See and verify backprop through self-attention. "
                    "Run `tinygrad-attn COMMAND --help` for a command's flags.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, _, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)

    def overview() -> int:
        parser.parse_args(argv)                                # --help, or one line for an unknown command
        parser.print_help()
        return 0
    return run("tinygrad-attn", overview, debug)


def run(prog: str, command: Callable[[], int | None], debug: bool = False) -> int:
    """`command()`'s exit status; an exception becomes one line `prog: error: ...` on stderr and status 1
    (unless `debug`: then the traceback)."""
    try:
        return int(command() or 0)                             # SystemExit passes: argparse's --help (0) or a
    except KeyboardInterrupt:                                  # usage error (2), its one line already printed
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                                    # `tinygrad-attn ... | head` closed the pipe early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # so the exit flush does not fail again
        return 0
    except Exception as e:
        if debug:
            raise
        if isinstance(e, CommandError):
            message = str(e)
        elif isinstance(e, OSError) and e.strerror:
            message = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
        else:
            message = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]} (rerun with --debug to see where)"
        print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
