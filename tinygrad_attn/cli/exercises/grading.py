"""How an exercise is graded: load the learner's file, compare each part with the reference, name the mistake.

A part is one array the learner computes (dV, ds, dW_q, ...). It is compared with the reference
as makemore's `cmp` does (exact / approximate / max |diff|), and when it is wrong it is compared
with the *variants* of the reference that the usual mistakes produce (the softmax Jacobian without
its rowsum term, a missing 1/sqrt(d_k), ...): the first one it matches is named. A few mistakes are
recognised from any reference (`generic`): a flipped sign, a transposed result, a gradient left at
its broadcast shape, a constant factor.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from ...backend import backend
from ...function import Function, unbroadcast
from ...gradcheck import GradcheckError, gradcheck
from ...tensor import Tensor

_PACKAGE = Path(__file__).resolve().parents[2]                 # tinygrad_attn/
RTOL, ATOL = 1e-5, 1e-8                                        # "approximate", and "matches a mistake"

# The mistakes' names: the CLI prints them, the tests look for them.
TRANSPOSED = "a transposed operand"
NO_SCALE = "a missing 1/sqrt(d_k)"
NO_ROWSUM = "the softmax Jacobian without its rowsum term"
SIGN = "a flipped sign"
UNBROADCAST = "a forgotten unbroadcast"
MASK = "masked positions not zeroed"
FACTOR = "off by a constant factor"


class LearnerError(Exception):
    """The learner's file could not be loaded (the message is one line, meant for the learner)."""


@dataclass
class Mistake:
    """A usual mistake: its name, what the learner probably wrote, and the answer that mistake gives."""

    name: str
    hint: str
    answer: np.ndarray


@dataclass
class Result:
    """The grade of one part: right or not, the cmp figures, and what went wrong in words."""

    part: str
    ok: bool
    exact: bool = False
    approximate: bool = False
    maxdiff: float = float("nan")
    note: str = ""                                             # why it failed: an exception or a shape
    extra: list[str] = field(default_factory=list)             # the diagnosis
    verdict_only: bool = False                                 # a gradcheck or a training run: pass/FAIL, no figures

    def lines(self) -> list[str]:
        if self.verdict_only:
            row = f"{self.part:<22} | {'pass' if self.ok else 'FAIL'}"
        else:
            diff = f"{self.maxdiff:.2e}" if np.isfinite(self.maxdiff) else "-"
            row = (f"{self.part:<22} | exact: {str(self.exact):5} | approximate: {str(self.approximate):5} | "
                   f"maxdiff: {diff}")
        return [row] + [f"    {line}" for line in ([self.note] if self.note else []) + self.extra]


def load(path: Path) -> ModuleType:
    """Import the learner's file as a fresh module: by path (importlib), never pickled, and taken out of
    sys.modules again afterwards, so two checks of two files never see each other's code."""
    global _loaded
    _loaded += 1
    name = f"_exercise_{_loaded}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LearnerError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                                 # dataclasses and the like look themselves up here
    try:
        with np.errstate(all="ignore"):
            spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:                       # the learner's code: report it, do not crash
        raise LearnerError(f"importing {path} failed: {_where(e)}") from None
    finally:
        sys.modules.pop(name, None)
    return module


_loaded = 0


def _where(e: BaseException) -> str:
    """`ValueError: msg (line 12 of softmax.py)`: the exception and the learner's line that raised it."""
    text = f"{type(e).__name__}: {e}".strip().rstrip(":")
    if isinstance(e, SyntaxError) and e.lineno:
        return f"{text} (line {e.lineno})"
    frames = [f for f in traceback.extract_tb(e.__traceback__)       # the learner's frames, not the package's
              if not Path(f.filename).resolve().is_relative_to(_PACKAGE)]
    if frames:
        text += f" (line {frames[-1].lineno} of {Path(frames[-1].filename).name})"
    return text


def call(part: str, fn: Callable, *args, **kwargs):
    """Run a learner's function; on an exception return a failed Result saying what happened."""
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    except NotImplementedError:
        return Result(part, False, note="not written yet (raises NotImplementedError)")
    except (Exception, SystemExit) as e:
        return Result(part, False, note=f"raised {_where(e)}")


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True))


def compare(part: str, got, want: np.ndarray, mistakes: list[Mistake] = ()) -> Result:
    """Grade one array against the reference; when it is wrong, name the mistake it matches."""
    if isinstance(got, Result):                                # the learner's code raised
        return got
    if got is None:
        return Result(part, False, note="returned None (not written yet?)")
    try:
        got = np.asarray(got.data if isinstance(got, Tensor) else got, dtype=np.float64)
    except (TypeError, ValueError):
        return Result(part, False, note=f"returned a {type(got).__name__}, not an array")
    if got.shape != want.shape:
        result = Result(part, False, note=f"has shape {got.shape}, expected {want.shape}")
    else:
        maxdiff = float(np.max(np.abs(got - want), initial=0.0))
        exact, approx = bool(np.array_equal(got, want)), _close(got, want)
        result = Result(part, approx, exact, approx, maxdiff)
        if approx:
            return result
    found = diagnose(got, want, mistakes)
    if found is not None:
        result.extra.append(f'diagnosis: matches "{found.name}": {found.hint}')
    elif not np.all(np.isfinite(got)):
        result.extra.append("diagnosis: it holds nan or inf")
    else:
        result.extra.append("diagnosis: no usual mistake matches; go through the derivation in the docstring again")
    return result


def compare_each(names: tuple[str, ...], got, wants: list[np.ndarray],
                 mistakes: list[list[Mistake]] | None = None) -> list[Result]:
    """Grade a learner's tuple of arrays (da, db, ...) part by part; one failed Result if it is not one."""
    if isinstance(got, Result):                                # the learner's code raised
        return [got]
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        return [Result(", ".join(names), False, note=f"must return {len(names)} arrays: {', '.join(names)}")]
    return [compare(n, g, w, m) for n, g, w, m in zip(names, got, wants, mistakes or [[]] * len(names))]


def diagnose(got: np.ndarray, want: np.ndarray, mistakes: list[Mistake] = ()) -> Mistake | None:
    """The first mistake whose answer `got` matches: the exercise's own first, then the generic ones."""
    for mistake in [*mistakes, *generic(got, want)]:
        if mistake is not None and _close(got, np.asarray(mistake.answer, dtype=np.float64)):
            return mistake
    return None


def generic(got: np.ndarray, want: np.ndarray) -> list[Mistake | None]:
    """Mistakes recognisable from any reference: sign, transpose, unbroadcast, a constant factor."""
    found: list[Mistake | None] = [Mistake(SIGN, "the gradient points the other way; check each minus sign", -want)]
    if want.ndim >= 2:
        found.append(Mistake(TRANSPOSED, "the result is the transpose of the right one; check which operand "
                             "is transposed (the shapes must come out right)", np.swapaxes(want, -1, -2)))
    if got.shape != want.shape and got.ndim >= want.ndim:
        try:
            summed = unbroadcast(got, want.shape)
        except (ValueError, IndexError):
            summed = None
        if summed is not None and _close(summed, want):
            found.append(Mistake(UNBROADCAST, f"your gradient has the broadcast shape {got.shape}; the input of "
                                 f"shape {want.shape} was used several times, so sum its copies back "
                                 "(ta.unbroadcast(grad, shape))", got))
    if got.shape == want.shape and np.any(want):
        c = float(np.sum(got * want) / np.sum(want * want))
        if abs(c - 1) > 1e-3 and abs(c) > 1e-6:
            found.append(Mistake(FACTOR, f"your answer is {c:.4g} times the right one; look for a missing or "
                                 "extra factor (a 1/N, a scale, a 2)", c * want))
    return found


def vjp(fn: Callable[..., Tensor], arrays: list[np.ndarray], grad: np.ndarray) -> list[np.ndarray]:
    """The reference: the framework's own gradients of fn(*tensors) against `grad` (float64, numpy backend)."""
    with backend("numpy"):
        tensors = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
        fn(*tensors).backward(grad)
    return [t.grad for t in tensors]


def gradcheck_part(part: str, fn: Callable[..., Tensor], inputs: list[Tensor]) -> Result:
    """Run `ta.gradcheck(fn, inputs)` on something the learner wrote; a failure prints gradcheck's message."""
    def run() -> Result:
        try:
            with backend("numpy"):
                gradcheck(fn, inputs)
        except GradcheckError as e:
            return Result(part, False, note=str(e))
        return Result(part, True)

    result = call(part, run)
    result.verdict_only = True
    return result


def as_function(forward: Callable[..., np.ndarray], backward: Callable[..., tuple]) -> type[Function]:
    """A ta.Function whose forward is `forward(*arrays)` (the reference) and whose backward is the
    learner's `backward(saved_inputs, saved_output, grad)`: so gradcheck can test the learner's math."""

    class YourBackward(Function):
        def forward(self, *arrays):
            self.inputs = arrays
            self.out = forward(*arrays)
            return self.out

        def backward(self, grad):
            grads = backward(self.inputs, self.out, grad)
            if grads is None:
                raise NotImplementedError
            grads = grads if isinstance(grads, tuple) else (grads,)
            return tuple(np.asarray(g, dtype=grad.dtype) for g in grads)

    return YourBackward


def report(name: str, results: list[Result], out=None) -> bool:
    """Print the table, one block per part, and a last line; True when every part is right."""
    out = out or sys.stdout
    for r in results:
        print("\n".join(r.lines()), file=out)
    passed = all(r.ok for r in results)
    wrong = [r.part for r in results if not r.ok]
    print(f"{name}: all {len(results)} parts right" if passed else
          f"{name}: {len(wrong)} of {len(results)} parts wrong: {'; '.join(wrong)}", file=out)
    return passed
