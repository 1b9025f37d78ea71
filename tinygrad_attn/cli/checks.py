"""`tinygrad-attn gradcheck`: every registered op and layer against finite differences, as a table.

The checks themselves live in `op_checks.py` (ops) and `layer_checks.py` (layers, losses, attention).
"""

import argparse

import numpy as np

from ..backend import backend, get_backend
from ..gradcheck import GradcheckError, assert_gradients_close, compare_gradients
from .layer_checks import LAYER_CHECKS
from .op_checks import OP_CHECKS, Check


def all_checks() -> list[Check]:
    """Op checks, then layer checks."""
    return OP_CHECKS + LAYER_CHECKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinygrad-attn gradcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["numba", "numpy"], default=get_backend())
    parser.add_argument("--only", default="", help="run the checks whose name contains this text")
    args = parser.parse_args(argv)
    failures = 0
    print(f"{'check':<40} {'max |analytic - numeric|':>26}  result   (backend {args.backend}, float64)")
    with backend(args.backend):
        for check in all_checks():
            if args.only not in check.name:
                continue
            try:
                results = compare_gradients(check.fn, check.make_inputs())
                worst = max(float(np.max(np.abs(a - n), initial=0.0)) for _, a, n in results)
                assert_gradients_close(results, atol=1e-5, rtol=1e-3)
                result = "pass"
            except GradcheckError as e:
                worst, result = float("nan"), f"FAIL: {e}"
                failures += 1
            print(f"{check.name:<40} {worst:>26.2e}  {result}")
    print(f"{'all passed' if not failures else f'{failures} failed'}")
    return 1 if failures else 0
