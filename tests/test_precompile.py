"""ta.precompile: the rehearsal records the kernel calls, the replay rebuilds their arguments with the same
Numba types, strides and sizes, and the calls are shared out once each between processes."""

import multiprocessing
import sys

import numba
import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import functional as F

precompile_module = sys.modules["tinygrad_attn.precompile"]
backend_module = sys.modules["tinygrad_attn.backend"]


def _layouts():
    base = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    readonly = base.copy()
    readonly.flags.writeable = False
    return {
        "C": base,
        "F": np.asfortranarray(base),
        "head-split": base.transpose(0, 2, 1, 3),
        "every other": base[:, :, ::2],
        "reversed": base[:, ::-1, :, ::-2],
        "broadcast": np.broadcast_to(np.ones((1, 5, 1), bool), (2, 5, 7)),
        "readonly": readonly,
        "empty": np.zeros((0, 4), np.float64),
        "0-d": np.array(3.0),
        "int ids": np.arange(6, dtype=np.int64).reshape(2, 3)[:, ::2],
    }


@pytest.mark.parametrize("name, x", list(_layouts().items()))
def test_rebuilt_arrays_have_the_same_type_strides_and_shape(name, x):
    rebuilt = precompile_module._build(precompile_module._describe(x))
    assert numba.typeof(rebuilt) == numba.typeof(x), name
    assert rebuilt.shape == x.shape and rebuilt.dtype == x.dtype
    if x.size:
        assert rebuilt.strides == x.strides
    assert rebuilt.flags.writeable == x.flags.writeable
    assert not rebuilt.any()                     # zeros: the replay needs the types, not the values


def test_structures_and_numbers_are_described_and_rebuilt():
    x = np.ones((2, 3), np.float32)
    described = precompile_module._describe((x, [x.T, None], 0.5, True))
    rebuilt = precompile_module._build(described)
    assert isinstance(rebuilt, tuple) and isinstance(rebuilt[1], list)
    assert numba.typeof(rebuilt[1][0]) == numba.typeof(x.T) and rebuilt[1][1] is None
    assert rebuilt[2:] == (0.5, True)
    # numbers count by type only: calls that differ in a scale compile the same code
    other = precompile_module._describe((x, [x.T, None], 0.25, False))
    assert precompile_module._signature(described) == precompile_module._signature(other)
    assert precompile_module._signature(described) != precompile_module._signature(
        precompile_module._describe((x.T, [x.T, None], 0.25, False)))


def _tiny_step(dtype=np.float64):
    """A forward and backward that calls a few kernels; the result on the numpy backend."""
    x = ta.Tensor(np.linspace(-1, 1, 6 * 5).reshape(6, 5).astype(dtype), requires_grad=True)
    w = ta.Tensor(np.linspace(1, 2, 5 * 3).reshape(5, 3).astype(dtype), requires_grad=True)
    loss = F.cross_entropy((x @ w).softmax(-1), np.array([0, 1, 2, 0, 1, 2]))
    loss.backward()
    return loss.item(), x.grad.copy()


def test_record_calls_sees_each_kernel_call_and_runs_on_numpy():
    with ta.backend("numpy"):
        expected = _tiny_step()
    seen = []
    calls = precompile_module.record_calls(lambda: seen.append(_tiny_step()))
    names = [name for name, _, _ in calls]
    assert {"matmul", "softmax", "softmax_backward", "cross_entropy_forward", "cross_entropy_backward"} <= set(names)
    assert names.count("softmax") == 1           # the same types and sizes: recorded once
    assert seen[0][0] == expected[0] and np.array_equal(seen[0][1], expected[1])
    assert ta.get_backend() == "numba" and "rehearsal" not in backend_module._MODULES


def test_record_calls_restores_the_backend_after_an_error():
    def broken():
        _tiny_step()
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        precompile_module.record_calls(broken)
    assert ta.get_backend() == "numba" and "rehearsal" not in backend_module._MODULES


def test_calls_are_grouped_by_compile_group_slowest_first(monkeypatch):
    monkeypatch.setattr(precompile_module.fast, "COMPILE_GROUPS", (("attention_forward", "attention_backward"),
                                                                   ("matmul",)))
    calls = [("softmax", (), ()), ("matmul", (1,), ()), ("attention_backward", (), ()), ("gelu", (), ()),
             ("attention_forward", (), ()), ("matmul", (2,), ())]
    groups = precompile_module._by_kernel(calls)
    assert [[c[0] for c in g] for g in groups] == [["attention_backward", "attention_forward"],
                                                   ["matmul", "matmul"], ["softmax"], ["gelu"]]


def test_replay_takes_each_group_once_from_the_shared_counter(monkeypatch):
    made = []

    class Fake:
        def __getattr__(self, name):
            return lambda *args: made.append((name, args))
    monkeypatch.setattr(precompile_module, "fast", Fake())
    counter = multiprocessing.get_context("spawn").Value("i", 1)    # another process took group 0
    groups = [[("a", (), ())], [("b", (precompile_module._describe(np.ones(2)),), ())], [("c", (), ())]]
    precompile_module.replay(groups, counter)
    assert [name for name, _ in made] == ["b", "c"] and counter.value > len(groups)
    assert isinstance(made[0][1][0], np.ndarray) and made[0][1][0].shape == (2,)


@pytest.mark.parametrize("workers", [1, 2])
def test_precompile_compiles_what_the_step_calls(workers):
    """After precompile (in one process or two), the step runs on the Numba kernels and matches numpy."""
    with ta.backend("numpy"):
        expected = _tiny_step(np.float32)
    assert ta.precompile(_tiny_step, np.float32, workers=workers) >= 5
    loss, grad = _tiny_step(np.float32)
    np.testing.assert_allclose(loss, expected[0], rtol=1e-5)
    np.testing.assert_allclose(grad, expected[1], rtol=1e-4, atol=1e-6)


def test_a_failing_call_is_raised_whichever_process_takes_it():
    """A call that fails in a helper process is not lost: this process replays the groups again and raises.
    Two groups and two processes, so the failing one lands in either."""
    good = [("softmax", (precompile_module._describe(np.ones((2, 3), np.float32)),), [])]
    bad = [("no_such_kernel", (), [])]
    for groups in ([good, bad], [bad, good]):
        with pytest.raises(AttributeError, match="no_such_kernel"):
            precompile_module.compile_groups(groups, workers=2)


def test_a_helper_that_dies_with_its_group_does_not_lose_it(monkeypatch):
    """A helper that took a group and crashed (exit code 1): this process replays every group afterwards,
    so the lost group's kernel still compiles here, and its error is raised here."""
    spawn = multiprocessing.get_context("spawn")

    class CrashedHelper:                                  # takes the next group, then exits with an error
        def __init__(self, target, args, daemon):
            self.counter, self.exitcode = args[1], None

        def start(self):
            with self.counter.get_lock():
                self.counter.value += 1
            self.exitcode = 1

        def join(self):
            pass

    class Context:
        Value = staticmethod(spawn.Value)
        Process = CrashedHelper

    monkeypatch.setattr(precompile_module.multiprocessing, "get_context", lambda method: Context)
    made = []
    monkeypatch.setattr(precompile_module, "replay", lambda groups, counter, _replay=precompile_module.replay:
                        made.append(counter.value) or _replay(groups, counter))
    good = [("softmax", (precompile_module._describe(np.ones((2, 3), np.float32)),), [])]
    with pytest.raises(AttributeError, match="no_such_kernel"):
        precompile_module.compile_groups([[("no_such_kernel", (), [])], good], workers=2)
    assert made == [1, 0]          # this process started after the helper's group, then replayed all
