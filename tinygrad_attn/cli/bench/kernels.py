"""Benchmark cases for the raw kernels: Numba ("numba") vs numpy reference ("numpy") vs PyTorch ("torch").

Inputs are built once per case; each implementation is a zero-argument callable. The torch
versions do the same work as the kernel (e.g. softmax forward+backward through
`torch._softmax_backward_data`, cross-entropy forward+backward through autograd).
"""

import numpy as np

from ...kernels import fast, reference
from .case import BenchCase

try:
    import torch
except ImportError:                      # torch is optional: the torch columns just disappear
    torch = None


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _t(x):
    return torch.from_numpy(np.ascontiguousarray(x))


def _matmul_cases(quick: bool) -> list[BenchCase]:
    out = []
    for n in (128, 512) if quick else (128, 512, 1024):
        a, b = _rand(n, n), _rand(n, n, seed=1)
        impls = {"numba": lambda a=a, b=b: fast.matmul(a, b), "numpy": lambda a=a, b=b: reference.matmul(a, b)}
        if torch is not None:
            ta, tb = _t(a), _t(b)
            impls["torch"] = lambda ta=ta, tb=tb: ta @ tb
        out.append(BenchCase("matmul", f"square n={n} f32", impls, flops=2.0 * n ** 3))
    for t in (64,) if quick else (64, 256):
        q, k = _rand(32, t, 32), _rand(32, t, 32, seed=1)
        p = _rand(32, t, t, seed=2)
        kt = k.swapaxes(-1, -2)                       # a transposed view, as the ops layer passes it
        qk = {"numba": lambda q=q, kt=kt: fast.matmul(q, kt), "numpy": lambda q=q, kt=kt: reference.matmul(q, kt)}
        pv = {"numba": lambda p=p, v=k: fast.matmul(p, v), "numpy": lambda p=p, v=k: reference.matmul(p, v)}
        if torch is not None:
            tq, tk, tp = _t(q), _t(k), _t(p)
            qk["torch"] = lambda tq=tq, tk=tk: tq @ tk.transpose(-1, -2)
            pv["torch"] = lambda tp=tp, tk=tk: tp @ tk
        flops = 2.0 * 32 * t * t * 32
        out.append(BenchCase("matmul", f"attn Q@K^T (32,{t},32)", qk, flops=flops))
        out.append(BenchCase("matmul", f"attn P@V (32,{t},{t})@(32,{t},32)", pv, flops=flops))
    return out


def _softmax_cases(quick: bool) -> list[BenchCase]:
    out = []
    shapes = [(2048, 64), (512, 512)] if quick else [(2048, 64), (512, 512), (8192, 128)]
    for shape in shapes:
        x, dy = _rand(*shape), _rand(*shape, seed=1)
        fwd = {"numba": lambda x=x: fast.softmax(x), "numpy": lambda x=x: reference.softmax(x)}

        def fb(mod, x=x, dy=dy):
            return mod.softmax_backward(mod.softmax(x), dy)

        both = {"numba": lambda fb=fb: fb(fast), "numpy": lambda fb=fb: fb(reference)}   # bind this shape's fb
        if torch is not None:
            tx, tdy = _t(x), _t(dy)
            fwd["torch"] = lambda tx=tx: torch.softmax(tx, -1)

            def torch_fb(tx=tx, tdy=tdy):
                y = torch.softmax(tx, -1)
                return torch._softmax_backward_data(tdy, y, -1, tx.dtype)

            both["torch"] = torch_fb
        out.append(BenchCase("softmax", f"forward {shape}", fwd))
        out.append(BenchCase("softmax", f"forward+backward {shape}", both))
    return out


def _engine_softmax_cases(quick: bool) -> list[BenchCase]:
    """softmax through the engine, the ops around it included: forward alone, and
    `(x.softmax(-1) * g).sum().backward()` (PyTorch: the same lines on torch tensors)."""
    import tinygrad_attn as ta

    out = []
    shapes = [(2048, 64), (512, 512)] if quick else [(2048, 64), (512, 512), (8192, 128)]
    for shape in shapes:
        x, g = _rand(*shape), _rand(*shape, seed=1)

        def ours(backend, x=x, g=g, backward=True):
            tx, tg = ta.Tensor(x, requires_grad=True), ta.Tensor(g)

            def step():
                with ta.backend(backend):
                    if not backward:
                        with ta.no_grad():
                            return tx.softmax(-1)
                    tx.grad = None
                    (tx.softmax(-1) * tg).sum().backward()
            return step

        fwd = {"numba": ours("numba", backward=False), "numpy": ours("numpy", backward=False)}
        both = {"numba": ours("numba"), "numpy": ours("numpy")}
        if torch is not None:
            px, pg = _t(x).requires_grad_(True), _t(g)

            def torch_fwd(px=px):
                with torch.no_grad():
                    return torch.softmax(px, -1)

            def torch_both(px=px, pg=pg):
                px.grad = None
                (px.softmax(-1) * pg).sum().backward()

            fwd["torch"], both["torch"] = torch_fwd, torch_both
        out.append(BenchCase("softmax engine", f"x.softmax(-1) {shape}", fwd))
        out.append(BenchCase("softmax engine", f"(x.softmax(-1)*g).sum().backward() {shape}", both))
    return out


def _cross_entropy_cases() -> list[BenchCase]:
    n, c = 4096, 512
    x = _rand(n, c)
    t = np.random.default_rng(1).integers(0, c, n)

    def fb(mod):
        loss, logsum = mod.cross_entropy_forward(x, t, -100)
        return loss.sum() / n, mod.cross_entropy_backward(x, t, logsum, -100, 1.0 / n)

    impls = {"numba": lambda: fb(fast), "numpy": lambda: fb(reference)}
    if torch is not None:
        tt = torch.from_numpy(t)
        tx = _t(x).requires_grad_(True)

        def torch_fb():
            tx.grad = None
            torch.nn.functional.cross_entropy(tx, tt).backward()
            return tx.grad

        impls["torch"] = torch_fb
    return [BenchCase("cross_entropy", f"forward+backward ({n},{c})", impls)]


def _transformer_cases() -> list[BenchCase]:
    shape = (1024, 256)
    x, dy = _rand(*shape) * 2, _rand(*shape, seed=1)
    w, b = 1 + _rand(shape[1], seed=2) * 0.1, _rand(shape[1], seed=3) * 0.1

    def gelu_fb(mod):
        return mod.gelu(x), mod.gelu_backward(x, dy)

    def ln_fb(mod):
        y, mean, rstd = mod.layer_norm(x, w, b, 1e-5)
        return y, mod.layer_norm_backward(dy, x, w, mean, rstd)

    gelu = {"numba": lambda: gelu_fb(fast), "numpy": lambda: gelu_fb(reference)}
    ln = {"numba": lambda: ln_fb(fast), "numpy": lambda: ln_fb(reference)}
    if torch is not None:
        tx = _t(x).requires_grad_(True)
        tw, tb, tdy = _t(w).requires_grad_(True), _t(b).requires_grad_(True), _t(dy)

        def torch_gelu():
            tx.grad = None
            torch.nn.functional.gelu(tx, approximate="tanh").backward(tdy)
            return tx.grad

        def torch_ln():
            tx.grad = tw.grad = tb.grad = None
            torch.nn.functional.layer_norm(tx, shape[1:], tw, tb, 1e-5).backward(tdy)
            return tx.grad

        gelu["torch"] = torch_gelu
        ln["torch"] = torch_ln
    return [BenchCase("gelu", f"forward+backward {shape}", gelu),
            BenchCase("layer_norm", f"forward+backward {shape}", ln)]


def cases(quick: bool = False) -> list[BenchCase]:
    """All kernel benchmark cases (`quick`: fewer and smaller ones)."""
    return (_matmul_cases(quick) + _softmax_cases(quick) + _engine_softmax_cases(quick) + _cross_entropy_cases()
            + _transformer_cases())
