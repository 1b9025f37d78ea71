"""Compile the Numba kernels a piece of code will call, on every core at once.

A Numba kernel compiles on its first call (then loads from the on-disk cache, `cache=True`), and Numba
compiles one function at a time per process: with an empty cache the first training step of the default
model waits for about a dozen kernels, one after another. `precompile(fn, *args)` gets them compiled in
parallel instead, in three steps:

1. rehearse: run `fn(*args)` once on the numpy backend, recording every kernel call the ops make (the
   kernel's name and its arguments' shapes, dtypes and strides; numbers and flags as they are);
2. replay: make each call that differs in its Numba types or sizes once on the numba backend, with
   zero-filled arrays of the same shapes, dtypes and strides, so that each kernel compiles for exactly the
   types (and takes exactly the size-dependent paths) that the real run will. The calls are shared out
   between this process and `workers - 1` spawned helper processes, one group of kernel wrappers at a time
   (two processes compiling the same kernel, or kernels that share helpers, would both do the whole work):
   each process takes the next group from a shared counter, the slowest to compile first
   (`fast.COMPILE_GROUPS`);
3. the compiled kernels land in Numba's cache, where this process finds the ones the helpers compiled
   the first time it calls them.

`fn` runs on the numpy backend, so its results are a rehearsal's: build a throwaway model in it. It must
not rely on random numbers the real run will use (seed the real run after precompiling).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from .backend import _MODULES, backend
from .kernels import fast, reference

_ARRAY = "array"


def _describe(value: Any) -> Any:
    """A picklable description of a kernel argument: arrays by shape, dtype, strides and writeability."""
    if isinstance(value, np.ndarray):
        return (_ARRAY, value.shape, value.dtype.str, value.strides, value.flags.writeable)
    if isinstance(value, (tuple, list)):
        return type(value)(_describe(v) for v in value)
    return value


def _signature(described: Any) -> Any:
    """What decides a call's compiled code: the description with numbers replaced by their types."""
    if isinstance(described, tuple) and described[:1] == (_ARRAY,):
        return described
    if isinstance(described, (tuple, list)):
        return tuple(_signature(v) for v in described)
    if isinstance(described, (bool, int, float, np.generic)):
        return type(described).__name__
    return described


def _build(described: Any) -> Any:
    """A zero-filled array (or structure of them) matching `_describe`'s description, strides included."""
    if isinstance(described, tuple) and described[:1] == (_ARRAY,):
        _, shape, dtype, strides, writeable = described
        dtype = np.dtype(dtype)
        if 0 in shape:
            return np.zeros(shape, dtype)
        low = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
        high = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0)
        buffer = np.zeros((high - low) // dtype.itemsize + 1, dtype)
        return np.lib.stride_tricks.as_strided(buffer[-low // dtype.itemsize:], shape, strides, writeable=writeable)
    if isinstance(described, (tuple, list)):
        return type(described)(_build(v) for v in described)
    return described


class _Recorder:
    """A backend module that runs the numpy kernels and records each call's description."""

    def __init__(self) -> None:
        self.calls: dict[Any, tuple[str, Any, Any]] = {}

    def __getattr__(self, name: str) -> Callable:
        kernel = getattr(reference, name)

        def recorded(*args, **kwargs):
            described = (name, _describe(args), _describe(sorted(kwargs.items())))
            self.calls.setdefault(_signature(described), described)
            return kernel(*args, **kwargs)
        return recorded


def record_calls(fn: Callable, *args: Any) -> list[tuple[str, Any, Any]]:
    """Run fn(*args) on the numpy backend; return its distinct kernel calls, in first-call order, as
    (kernel name, described positional args, described keyword args)."""
    recorder = _Recorder()
    _MODULES["rehearsal"] = recorder              # a backend of its own for the rehearsal
    try:
        with backend("rehearsal"):
            fn(*args)
    finally:
        del _MODULES["rehearsal"]
    return list(recorder.calls.values())


def _by_kernel(calls: list[tuple[str, Any, Any]]) -> list[list[tuple[str, Any, Any]]]:
    """The calls grouped for `replay`: the wrappers of each of `fast.COMPILE_GROUPS` together (they share
    compiled helpers, which one process then compiles once), in that order, then every other wrapper alone."""
    rank = {name: i for i, group in enumerate(fast.COMPILE_GROUPS) for name in group}
    groups: dict[Any, list] = {}
    for call in calls:
        groups.setdefault(rank.get(call[0], call[0]), []).append(call)
    return sorted(groups.values(), key=lambda g: rank.get(g[0][0], len(fast.COMPILE_GROUPS)))


def replay(groups: list[list[tuple[str, Any, Any]]], counter) -> None:
    """Make the groups of calls not yet taken by another process, on the Numba kernels: the next index comes
    from `counter` (a shared multiprocessing.Value), so each call is made (and compiles) once in all."""
    while True:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        if index >= len(groups):
            return
        for name, args, kwargs in groups[index]:
            getattr(fast, name)(*_build(args), **dict(_build(kwargs)))


def precompile(fn: Callable, *args: Any, workers: int | None = None) -> int:
    """Compile (or load from the cache) every Numba kernel that fn(*args) calls, spread over `workers`
    processes (default: Numba's thread count, which NUMBA_NUM_THREADS sets). Returns the number of distinct
    kernel calls made. Helper processes are started with "spawn" (a fresh interpreter: no forked thread
    pools); if they cannot be started, this process compiles everything itself."""
    calls = record_calls(fn, *args)
    groups = _by_kernel(calls)
    compile_groups(groups, max(1, min(len(groups), numba.get_num_threads() if workers is None else workers)))
    return len(calls)


def compile_groups(groups: list[list[tuple[str, Any, Any]]], workers: int) -> None:
    """Replay the groups in this process and `workers - 1` helpers. If a helper fails, this process replays
    every group itself afterwards (the compiled ones load from the cache), so the helper's error is raised
    here instead of a kernel silently left to compile in the middle of the run."""
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    helpers = []
    for _ in range(workers - 1):
        helper = context.Process(target=replay, args=(groups, counter), daemon=True)
        try:
            helper.start()
        except OSError:
            break
        helpers.append(helper)
    try:
        replay(groups, counter)
    finally:
        for helper in helpers:
            helper.join()
    if any(helper.exitcode != 0 for helper in helpers):
        replay(groups, context.Value("i", 0))
