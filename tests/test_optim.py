"""Optimizers on a known quadratic: each step against the published update rule written out here,
and (when PyTorch is installed) against torch.optim on the same problem."""

import re

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import nn, optim

A = np.array([[1.0, 2.0, 0.5], [3.0, 0.2, 1.5]])             # L(p) = sum(A/2 * p^2 + B * p), so dL/dp = A p + B
B = np.array([[0.3, -1.0, 2.0], [0.0, 0.7, -0.4]])
P0 = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])


def grad_of(p):
    return A * p + B


def run(make_optimizer, steps=4, dtype=np.float64):
    """Parameters after each of `steps` steps of the optimizer on L."""
    p = nn.Parameter(P0.astype(dtype))
    opt = make_optimizer([p])
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = (ta.Tensor(A / 2, dtype=dtype) * p * p + ta.Tensor(B, dtype=dtype) * p).sum()
        loss.backward()
        opt.step()
        history.append(p.data.copy())
    return history


def sgd_reference(lr, momentum=0.0, weight_decay=0.0, steps=4):
    """v_1 = g_1, v_t = mu v_{t-1} + g_t (g including the L2 term); p_t = p_{t-1} - lr v_t."""
    p, v, out = P0.copy(), None, []
    for _ in range(steps):
        g = grad_of(p) + weight_decay * p
        v = g if v is None or momentum == 0 else momentum * v + g
        p = p - lr * v
        out.append(p)
    return out


def adam_reference(lr, betas, eps, weight_decay=0.0, decoupled=False, steps=4):
    """Kingma & Ba, Algorithm 1 (with m_hat, v_hat), plus L2 in g (Adam) or Loshchilov & Hutter's
    decoupled decay p <- p - lr * wd * p (AdamW)."""
    b1, b2 = betas
    p, m, v, out = P0.copy(), np.zeros_like(P0), np.zeros_like(P0), []
    for t in range(1, steps + 1):
        g = grad_of(p)
        if decoupled:
            p = p - lr * weight_decay * p
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


CASES = {  # name: (our optimizer, reference trajectory, torch optimizer)
    "sgd": (lambda ps: optim.SGD(ps, lr=0.1), lambda: sgd_reference(0.1), ("SGD", {"lr": 0.1})),
    "sgd-momentum": (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9), lambda: sgd_reference(0.05, 0.9),
                     ("SGD", {"lr": 0.05, "momentum": 0.9})),
    "sgd-momentum-wd": (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.5, weight_decay=0.1),
                        lambda: sgd_reference(0.05, 0.5, 0.1),
                        ("SGD", {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1})),
    "adam": (lambda ps: optim.Adam(ps, lr=0.1), lambda: adam_reference(0.1, (0.9, 0.999), 1e-8),
             ("Adam", {"lr": 0.1})),
    "adam-l2": (lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.5),
                lambda: adam_reference(0.01, (0.8, 0.99), 1e-3, 0.5),
                ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-3, "weight_decay": 0.5})),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.1), lambda: adam_reference(0.1, (0.9, 0.999), 1e-8, 0.01, True),
              ("AdamW", {"lr": 0.1})),
    "adamw-wd": (lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.3),
                 lambda: adam_reference(0.05, (0.9, 0.999), 1e-8, 0.3, True),
                 ("AdamW", {"lr": 0.05, "weight_decay": 0.3})),
}


@pytest.mark.parametrize("name", CASES)
def test_updates_follow_the_published_rule(name):
    ours, reference, _ = CASES[name]
    for got, expected in zip(run(ours), reference()):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", CASES)
def test_updates_match_torch(name):
    torch = pytest.importorskip("torch")
    ours, _, (torch_name, kwargs) = CASES[name]
    p = torch.tensor(P0, dtype=torch.float32, requires_grad=True)
    opt = getattr(torch.optim, torch_name)([p], **kwargs)
    a, b = torch.tensor(A, dtype=torch.float32), torch.tensor(B, dtype=torch.float32)
    for got in run(ours, dtype=np.float32):
        opt.zero_grad()
        (a / 2 * p * p + b * p).sum().backward()
        opt.step()
        np.testing.assert_allclose(got, p.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_step_updates_the_same_arrays_in_place_and_skips_missing_grads():
    used, unused = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    arrays = used.data, unused.data
    params = [used, unused]
    for opt in (optim.SGD(params, lr=0.1, momentum=0.9), optim.Adam(params), optim.AdamW(params)):
        used.grad, unused.grad = np.full(3, 2.0), None
        opt.step()
        assert used.data is arrays[0] and unused.data is arrays[1]
        np.testing.assert_array_equal(unused.data, 1.0)      # no grad: untouched, even by weight decay
    assert np.all(used.data < 1)
    opt.zero_grad()
    assert used.grad is None


def test_adam_counts_steps_per_parameter():
    """A parameter that misses steps gets its own bias correction, as in PyTorch."""
    late = nn.Parameter(np.array([1.0]))
    opt = optim.Adam([nn.Parameter(np.array([1.0])), late], lr=0.1)
    opt.params[0].grad = np.array([1.0])
    opt.step()
    late.grad = np.array([5.0])
    opt.step()
    np.testing.assert_allclose(late.data, [1.0 - 0.1], rtol=1e-7)   # first step of Adam moves by lr * sign(g)


def test_clip_grad_norm():
    a, b, c = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros((1, 2))), nn.Parameter(np.zeros(1))
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([[0.0, 4.0]])
    total = optim.clip_grad_norm([a, b, c], max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad, [3 / (5 + 1e-6), 0.0])
    np.testing.assert_allclose(np.sqrt(np.sum(a.grad**2) + np.sum(b.grad**2)), 1.0, rtol=1e-6)
    assert optim.clip_grad_norm([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-6)   # under the limit: unchanged
    np.testing.assert_allclose(a.grad, [3 / (5 + 1e-6), 0.0])
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm must be >= 0"):
        optim.clip_grad_norm([a], -1.0)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    grads = [np.random.default_rng(0).standard_normal(s) for s in [(3, 4), (5,)]]
    ours = [nn.Parameter(np.zeros(g.shape)) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    total = optim.clip_grad_norm(ours, 0.5)
    assert total == pytest.approx(float(torch.nn.utils.clip_grad_norm_(theirs, 0.5)), rel=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("make, message", [
    (lambda: optim.SGD([], lr=0.1), "SGD: got an empty parameter list"),
    (lambda: optim.SGD([ta.Tensor([1.0])], lr=0.1), "SGD: parameter 0 is not a Tensor with requires_grad=True"),
    (lambda: optim.SGD([nn.Parameter([1.0])], lr=-1), "SGD: lr must be >= 0, got -1"),
    (lambda: optim.SGD([nn.Parameter([1.0])], lr=0.1, momentum=-0.5), "SGD: momentum must be >= 0"),
    (lambda: optim.Adam([nn.Parameter([1.0])], betas=(0.9, 1.0)), r"Adam: betas must be two numbers in \[0, 1\)"),
    (lambda: optim.AdamW([nn.Parameter([1.0])], eps=-1.0), "AdamW: eps must be >= 0"),
], ids=["empty", "no-grad", "lr", "momentum", "betas", "eps"])
def test_optimizer_argument_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


# ----------------------------------------------------------------------------- misuse that used to pass silently


@pytest.mark.parametrize("make", [optim.SGD, optim.Adam, optim.AdamW], ids=lambda m: m.__name__)
def test_a_single_parameter_is_refused_naming_the_optimizer(make):
    p = nn.Parameter(np.ones((3, 2)))
    with pytest.raises(TypeError, match=rf"{make.__name__}: params must be an iterable of Parameters, got a single "
                                        r"Parameter of shape \(3, 2\); wrap it in a list"):
        make(p, lr=0.1)
    make([p], lr=0.1)                                          # the list form works


@pytest.mark.parametrize("make", [optim.SGD, optim.Adam, optim.AdamW], ids=lambda m: m.__name__)
def test_a_module_is_refused_pointing_at_parameters(make):
    message = rf"{make.__name__}: .*got the module Sequential; pass Sequential.parameters\(\)"
    with pytest.raises(TypeError, match=message):
        make(nn.Sequential(nn.Linear(2, 2)), lr=0.1)           # a Sequential is iterable: it must not be taken apart


@pytest.mark.parametrize("lr, error", [("0.1", TypeError), (None, TypeError), (True, TypeError),
                                       (float("nan"), ValueError), (-0.1, ValueError)], ids=repr)
def test_lr_must_be_a_number_at_least_zero(lr, error):
    for make in (optim.SGD, optim.Adam, optim.AdamW):
        with pytest.raises(error, match=rf"{make.__name__}: lr must be .*got {re.escape(repr(lr))}"):
            make([nn.Parameter([1.0])], lr=lr)
    assert optim.SGD([nn.Parameter([1.0])], lr=np.float32(0.5)).lr == 0.5   # numpy numbers are numbers


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps), lambda ps: optim.AdamW(ps)],
                         ids=["sgd", "sgd-momentum", "adam", "adamw"])
def test_step_refuses_a_grad_of_the_wrong_shape_and_changes_nothing(make):
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones((2, 3)))
    opt = make([a, b])
    name = type(opt).__name__
    a.grad, b.grad = np.ones(3), np.ones(3)                    # b's grad broadcasts to (2, 3): Adam used to accept it
    message = rf"{name}.step: parameter 1 has shape \(2, 3\) but its .grad has shape \(3,\)"
    with pytest.raises(ValueError, match=message):
        opt.step()
    np.testing.assert_array_equal(a.data, np.ones(3))          # checked before any update
    b.grad = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match=rf"{name}.step: parameter 1 \(shape \(2, 3\)\) has dtype float64 but its "
                                        r".grad has dtype float32"):
        opt.step()


def test_clip_grad_norm_takes_a_single_tensor_like_pytorch():
    p = nn.Parameter(np.zeros(2))
    p.grad = np.array([3.0, 4.0])
    assert optim.clip_grad_norm(p, 1.0) == pytest.approx(5.0)  # used to return 0.0 and clip nothing
    np.testing.assert_allclose(p.grad, [3 / (5 + 1e-6), 4 / (5 + 1e-6)])
    q = nn.Parameter(np.zeros(2))
    q.grad = np.array([3.0, 4.0])
    assert optim.clip_grad_norm((x for x in [q]), 1.0) == pytest.approx(5.0)   # any iterable, a generator too
    np.testing.assert_array_equal(p.grad, q.grad)


@pytest.mark.parametrize("max_norm, error", [("1", TypeError), (None, TypeError), (-1.0, ValueError),
                                             (float("nan"), ValueError)], ids=repr)
def test_clip_grad_norm_max_norm_must_be_a_number_at_least_zero(max_norm, error):
    with pytest.raises(error, match=rf"clip_grad_norm: max_norm must be .*got {re.escape(repr(max_norm))}"):
        optim.clip_grad_norm([nn.Parameter([1.0])], max_norm)


def test_clip_grad_norm_refuses_a_module():
    with pytest.raises(TypeError, match=r"clip_grad_norm: .*got the module Linear; pass Linear.parameters\(\)"):
        optim.clip_grad_norm(nn.Linear(2, 2), 1.0)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=ta.Tensor(0.05), momentum=ta.Tensor(0.9), weight_decay=np.array(0.1)),
    lambda ps: optim.Adam(ps, lr=np.float32(0.01), betas=(ta.Tensor(0.9), np.float64(0.99)), eps=ta.Tensor(1e-8)),
], ids=["sgd", "adam"])
def test_hyperparameters_given_as_0d_tensors_are_read_as_numbers(make):
    """A 0-d Tensor or array passes the number check, so it must be stored as the number it holds: a Tensor
    kept as momentum broke the second step (a Tensor does not take part in numpy's in-place ufuncs)."""
    p = ta.Tensor(np.ones(3), requires_grad=True)
    opt = make([p])
    for _ in range(2):
        p.grad = np.ones(3)
        opt.step()
    assert all(isinstance(v, float) for v in vars(opt).values() if not isinstance(v, (list, tuple)))
    assert np.all(np.isfinite(p.data)) and np.all(p.data < 1)
