"""Benchmark cases for the fused attention kernels: fused (Numba) vs unfused (numpy, materialised T x T) vs
PyTorch's `scaled_dot_product_attention`, forward and forward+backward, plus the peak extra memory of each;
and the whole `nn.SelfAttention` layer (projections included) forward+backward against the same layer in PyTorch
(three bias-free Linear projections and SDPA)."""

import math
import tracemalloc

import numpy as np

import tinygrad_attn as ta
from tinygrad_attn import nn
from tinygrad_attn.kernels import attention, attention_reference

from .case import BenchCase

SHAPES = [(32, 64, 32), (16, 256, 64), (4, 2048, 64)]   # (BH, T, d), d = dv
CAUSAL_SHAPE = (16, 256, 64)
LAYER_SHAPES = [(8, 64, 64), (4, 256, 64)]              # (B, T, d_model) of the SelfAttention layer cases


def _inputs(bh: int, t: int, d: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((bh, t, d)).astype(np.float32) for _ in range(4))   # q, k, v, do


def _numpy_impls(kernels, q, k, v, do, causal: bool, scale: float) -> tuple:
    """(forward, forward + backward) callables for one kernel module (fused or reference)."""
    def forward():
        return kernels.attention_forward(q, k, v, None, causal, scale)

    def forward_backward():
        o, lse = kernels.attention_forward(q, k, v, None, causal, scale)
        return kernels.attention_backward(q, k, v, o, do, lse, None, causal, scale)
    return forward, forward_backward


def _torch_impls(q, k, v, do, causal: bool) -> tuple | None:
    """PyTorch's SDPA on the same data as (1, BH, T, d) (4-D inputs select its CPU flash-attention kernel;
    3-D ones fall back to the unfused math path), or None when torch is not installed."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    tq, tk, tv, tdo = (torch.from_numpy(x)[None] for x in (q, k, v, do))
    gq, gk, gv = (x.clone().requires_grad_(True) for x in (tq, tk, tv))

    def forward():
        with torch.no_grad():
            return F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)

    def forward_backward():
        for x in (gq, gk, gv):
            x.grad = None
        F.scaled_dot_product_attention(gq, gk, gv, is_causal=causal).backward(tdo)
        return gq.grad, gk.grad, gv.grad
    return forward, forward_backward


def _layer_inputs(b: int, t: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((b, t, d)).astype(np.float32), rng.standard_normal((b, t, d)).astype(np.float32)


def _layer_ours(b: int, t: int, d: int):
    """One forward+backward of nn.SelfAttention(d) on x [B, T, d] (x requires grad too, as inside a model)."""
    ta.manual_seed(0)
    layer = nn.SelfAttention(d)
    x_np, g = _layer_inputs(b, t, d)
    x = ta.Tensor(x_np, requires_grad=True)
    params = [x, *layer.parameters()]

    def step():
        for p in params:
            p.grad = None
        layer(x).backward(g)
    return step


def _layer_torch(b: int, t: int, d: int):
    """The same layer in PyTorch: three bias-free Linear projections and SDPA, or None without torch."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.manual_seed(0)
    w_q, w_k, w_v = (torch.nn.Linear(d, d, bias=False) for _ in range(3))
    x_np, g_np = _layer_inputs(b, t, d)
    x, g = torch.from_numpy(x_np).requires_grad_(True), torch.from_numpy(g_np)
    params = [x, w_q.weight, w_k.weight, w_v.weight]

    def step():
        for p in params:
            p.grad = None
        F.scaled_dot_product_attention(w_q(x), w_k(x), w_v(x)).backward(g)
    return step


def layer_cases() -> list[BenchCase]:
    """nn.SelfAttention forward+backward at the LAYER_SHAPES, ours (numba backend) vs PyTorch."""
    out = []
    for b, t, d in LAYER_SHAPES:
        impls = {"numba": _layer_ours(b, t, d)}
        theirs = _layer_torch(b, t, d)
        if theirs is not None:
            impls["torch"] = theirs
        flops = 3.5 * 4.0 * b * t * t * d + 3 * 3 * 2.0 * b * t * d * d   # attention + 3 projections, fwd+bwd
        out.append(BenchCase("attention", f"SelfAttention forward+backward B={b} T={t} d={d}", impls, flops=flops))
    return out


def cases(quick: bool = False) -> list[BenchCase]:
    """Forward and forward+backward for each shape (float32, non-causal) and one causal shape; `quick` drops
    the T = 2048 shape (the unfused reference needs about 200 MB and a second per call there)."""
    out = []
    shapes = [s for s in SHAPES if not (quick and s[1] > 256)]
    for (bh, t, d), causal in [(s, False) for s in shapes] + [(CAUSAL_SHAPE, True)]:
        q, k, v, do = _inputs(bh, t, d)
        scale = 1.0 / math.sqrt(d)
        fused = _numpy_impls(attention, q, k, v, do, causal, scale)
        unfused = _numpy_impls(attention_reference, q, k, v, do, causal, scale)
        torch_fns = _torch_impls(q, k, v, do, causal)
        flops = 4.0 * bh * t * t * d * (0.5 if causal else 1.0)          # q k^T and p v
        for i, (what, mult) in enumerate([("forward", 1.0), ("forward+backward", 3.5)]):
            impls = {"numba": fused[i], "unfused": unfused[i]}
            if torch_fns is not None:
                impls["torch"] = torch_fns[i]
            name = f"sdpa {what} BH={bh} T={t} d={d}" + (" causal" if causal else "")
            out.append(BenchCase("attention", name, impls, flops=flops * mult))
    return out + layer_cases()


def peak_memory(bh: int = 4, t: int = 2048, d: int = 64) -> dict[str, int]:
    """Peak bytes allocated (tracemalloc sees numpy buffers) during forward+backward, fused vs unfused, beyond
    the inputs: O(T * d) for the fused kernels, O(T^2) per head for the materialised reference."""
    q, k, v, do = _inputs(bh, t, d)
    scale = 1.0 / math.sqrt(d)
    peaks = {}
    for name, kernels in [("numba", attention), ("unfused", attention_reference)]:
        _numpy_impls(kernels, q[:, :64], k[:, :64], v[:, :64], do[:, :64], False, scale)[1]()   # compile first
        tracemalloc.start()
        _numpy_impls(kernels, q, k, v, do, False, scale)[1]()
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peaks


def _main(argv: list[str]) -> None:
    """`python -m tinygrad_attn.cli.bench.attention [IMPL ...]`: min and median time of each case for the named
    implementations (default: all), each timed in its own block of repeats, then the peak-memory figures.
    Time one implementation per process for clean numbers: two thread pools in one process disturb each other."""
    import time

    wanted = set(argv)
    for case in cases():
        for impl, fn in case.impls.items():
            if wanted and impl not in wanted:
                continue
            fn()
            times = []
            for _ in range(5 if "2048" in case.name else 30):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            print(f"{case.name:48s} {impl:8s} min {1e3 * min(times):9.3f} ms  median {1e3 * np.median(times):9.3f} ms"
                  f"  {case.flops / min(times) / 1e9:6.1f} GFLOP/s")
    if not wanted or wanted & {"numba", "unfused"}:
        peaks = peak_memory()
        print("peak extra memory, forward+backward BH=4 T=2048 d=64:",
              ", ".join(f"{name} {peak / 2**20:.1f} MiB" for name, peak in peaks.items()))


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
