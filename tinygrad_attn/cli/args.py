"""What every subcommand's arguments share: a parser whose usage errors are one line, help that shows each
default once, argument types that check ranges, and `CommandError` for a failure while running.

A mistake in the arguments is one line on stderr, `tinygrad-attn train: error: argument --steps: ...`,
and exit status 2 (argparse's usage error); a failure while running (`CommandError`, an unwritable
folder) is one line and exit status 1. `cli.main` turns either into that line; `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path


class CommandError(Exception):
    """A failure while a command runs (not a mistake in its arguments): one line, exit status 1."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends `(default: X)` to a flag's help unless the help already says its default, or there is none
    to show (None, False: a flag that is off unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)) or action.required:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (no usage block), with `HelpFormatter` and a
    `--debug` flag (show the traceback of an error instead of one line)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        if self.add_help:                                  # subparsers made by add_subparsers get it too
            self.add_argument("--debug", action="store_true", help="on an error, show the full traceback")

    def error(self, message: str):
        """One line on stderr, exit status 2 (argparse prints the usage block and this line)."""
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int in [low, high] (either end open when None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or (low is not None and value < low) or (high is not None and value > high):
            want = ("an integer" if low is None and high is None else f"an integer <= {high}" if low is None
                    else f"an integer >= {low}" if high is None else f"an integer from {low} to {high}")
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        return value
    return parse


def number(above: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite float, greater than `above` when given."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (above is not None and value <= above):
            want = "a number" + (f" > {above:g}" if above is not None else "")
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        return value
    return parse


def make_folder(out: Path, flag: str = "--out") -> None:
    """Create the output folder `out` given by `flag` and check it can be written, before any work."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CommandError(f"cannot create the {flag} folder {out}: {e.strerror}") from e
    if not os.access(out, os.W_OK):
        raise CommandError(f"cannot write to the {flag} folder {out}")


def check_output_file(parser: argparse.ArgumentParser, path: Path | None, flag: str) -> None:
    """A usage error (one line, status 2) unless the file `path` given by `flag` could be written: not a
    folder, in a folder that exists. Checked before any work, so a typo does not cost a run."""
    if path is None:
        return
    if path.is_dir():
        parser.error(f"argument {flag}: {path} is a folder; give a file name such as {path / 'out'}")
    if not path.parent.is_dir():
        parser.error(f"argument {flag}: the folder {path.parent} does not exist")
