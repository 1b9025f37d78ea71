"""The `tinygrad-attn` command: train, sample, demo, gradcheck, bench.

Each subcommand is a `main(argv) -> int` function in its own module, imported only when that
subcommand runs, so `tinygrad-attn --help` stays fast.
"""

import argparse
import importlib
import sys

_CLI = "tinygrad_attn.cli."
SUBCOMMANDS = {  # name: (module, function, one-line help)
    "train": (_CLI + "train", "main", "train a tiny attention model on a built-in task"),
    "sample": (_CLI + "train", "sample_main", "run a trained checkpoint on an input and show its attention"),
    "demo": (_CLI + "walkthrough", "main", "walk through self-attention step by step (x1, x2, x3 -> h1, h2, h3)"),
    "gradcheck": (_CLI + "checks", "main", "check every registered op and layer against finite differences"),
    "bench": (_CLI + "bench", "main", "time kernels and layers against numpy (and PyTorch if installed)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        if argv[0] != "bench":                  # (bench makes the call itself, unless --no-tune)
            from tinygrad_attn.kernels import tune_process
            tune_process()                      # this process is ours: passive OpenMP waits, malloc thresholds
        module, function, _ = SUBCOMMANDS[argv[0]]
        return int(getattr(importlib.import_module(module), function)(argv[1:]) or 0)
    parser = argparse.ArgumentParser(prog="tinygrad-attn", description="See and verify backprop through "
                                     "self-attention. Run `tinygrad-attn COMMAND --help` for a command's flags.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, _, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text)
    parser.parse_args(argv)                                    # --help, or a usage error for an unknown command
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
