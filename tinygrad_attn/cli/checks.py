"""`tinygrad-attn gradcheck`: every registered op and layer against finite differences, as a table.

The checks themselves live in `op_checks.py` (ops) and `layer_checks.py` (layers, losses, attention).
"""

import numpy as np

from ..backend import backend, get_backend
from ..gradcheck import GradcheckError, assert_gradients_close, compare_gradients
from .args import Parser
from .layer_checks import LAYER_CHECKS
from .op_checks import OP_CHECKS, Check


def all_checks() -> list[Check]:
    """Op checks, then layer checks."""
    return OP_CHECKS + LAYER_CHECKS


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="tinygrad-attn gradcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["numba", "numpy"], default=get_backend(),
                        help="kernels the ops run on during the checks")
    parser.add_argument("--only", metavar="TEXT", default=None,
                        help="run only the checks whose name contains TEXT (ignoring case)")
    args = parser.parse_args(argv)
    checks = [c for c in all_checks() if args.only is None or args.only.lower() in c.name.lower()]
    if not checks:
        names = dict.fromkeys(c.name.split()[0].rstrip(",") for c in all_checks())
        parser.error(f"argument --only: no check name contains {args.only!r}; the names start with: "
                     + ", ".join(names))
    failures = 0
    print(f"{'check':<40} {'max |analytic - numeric|':>26}  result   (backend {args.backend}, float64)")
    with backend(args.backend):
        for check in checks:
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
