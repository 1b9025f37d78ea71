"""The built-in tasks: batch shapes, repeatability under ta.manual_seed, and targets checked by hand."""

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn.cli.tasks import TASKS, TEXT, get_task

SEQUENCE_TASKS = ["copy", "reverse", "sort", "shift"]


def expected_target(name: str, row: list[int]) -> list[int]:
    """The target of one sequence, written out with plain Python, independently of tasks.py."""
    T = len(row)
    if name == "copy":
        return list(row)
    if name == "reverse":
        return [row[T - 1 - i] for i in range(T)]
    if name == "sort":
        return sorted(row)
    return [row[(i + 1) % T] for i in range(T)]               # shift: the next position, wrapping around


@pytest.mark.parametrize("name", TASKS)
def test_batch_shapes_and_dtypes(name):
    task = get_task(name)
    x, y = task.batch(5)
    assert x.shape == y.shape == (5, task.seq_len)
    assert x.dtype.kind == y.dtype.kind == "i"
    assert 0 <= x.min() and x.max() < task.vocab_size and 0 <= y.min() and y.max() < task.vocab_size


@pytest.mark.parametrize("name", TASKS)
def test_manual_seed_repeats_batches(name):
    task = get_task(name)
    ta.manual_seed(7)
    first = task.batch(4), task.batch(4, held_out=True)
    ta.manual_seed(7)
    second = task.batch(4), task.batch(4, held_out=True)
    for (a, b), (c, d) in zip(first, second):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    ta.manual_seed(8)
    assert not np.array_equal(task.batch(4)[0], first[0][0])


@pytest.mark.parametrize("name", SEQUENCE_TASKS)
@pytest.mark.parametrize("seq_len", [2, 5, 8])
def test_sequence_targets(name, seq_len):
    ta.manual_seed(0)
    x, y = get_task(name, seq_len).batch(50)
    for row, target in zip(x.tolist(), y.tolist()):
        assert target == expected_target(name, row)


def test_shift_never_answers_with_own_position():
    """Each position's answer sits at another position (the point of the task)."""
    x = np.arange(6)[None]                                     # distinct tokens: the answer's position is visible
    task = get_task("shift", 6)
    y = task.rule(x)
    assert all(int(y[0, i]) != int(x[0, i]) for i in range(6))


def test_lm_windows_come_from_the_text():
    task = get_task("lm", 16)
    assert task.causal and task.vocab_size == len(set(TEXT))
    cut = len(task.train_ids)
    ta.manual_seed(1)
    for held_out, source in ((False, TEXT[:cut]), (True, TEXT[cut:])):
        x, y = task.batch(8, held_out=held_out)
        np.testing.assert_array_equal(y[:, :-1], x[:, 1:])      # targets are the inputs shifted by one
        for row, target in zip(x, y):
            window = "".join(task.decode(row)) + task.decode(target[-1:])[0]
            assert window in source


def test_encode_and_decode():
    task = get_task("reverse")
    ids = task.encode("3 1 4 1 5 9 2 6")
    np.testing.assert_array_equal(ids, [3, 1, 4, 1, 5, 9, 2, 6])
    np.testing.assert_array_equal(task.encode("31415926"), ids)
    assert task.decode(ids) == list("31415926")
    with pytest.raises(ValueError, match="exactly 8 tokens"):
        task.encode("3 1 4")
    with pytest.raises(ValueError, match="unknown tokens"):
        task.encode("3 1 4 1 5 9 2 x")
    lm = get_task("lm")
    assert "".join(lm.decode(lm.encode("attention"))) == "attention"
    with pytest.raises(ValueError, match="not in the training text"):
        lm.encode("attention\u00e9")


def test_get_task_errors():
    with pytest.raises(ValueError, match="unknown task"):
        get_task("translate")
    with pytest.raises(ValueError, match="at least 2"):
        get_task("copy", 1)
    assert get_task("sort", 5).seq_len == 5
