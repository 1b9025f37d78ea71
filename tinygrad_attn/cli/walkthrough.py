"""`tinygrad-attn demo`: self-attention in six steps, from three token vectors to its gradients.

1. Naive self-attention: every token x_i scores every token x_j (itself included) by x_i . x_j.
2. The problem: a token's score with itself is usually the largest; measured over random tokens.
3. Query, key, value: the same tokens through W_q, W_k, W_v (an `nn.SelfAttention`).
4. Learning to look elsewhere: a task where each token needs its neighbour, which naive attention
   cannot learn and the projections can.
5. Backprop through it: every gradient read off the graph with `retain_grad()` and compared with
   its closed-form formula.
6. Softmax built from small ops against the fused softmax op: same gradients, smaller graph.

Everything here uses the public API only (`ta`, `nn`, `optim`, `F`, `viz`), so it doubles as an
example of how to use the package. `--out DIR` also saves the figures as PNG files: the heatmaps,
step 2's self-bias against d, step 4's naive and learned weights side by side with the target cells
marked, and the graphs of steps 5 and 6 drawn by `viz.plot_graph` (and as DOT text for Graphviz).
"""

from __future__ import annotations

import math
import statistics
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

import tinygrad_attn as ta
import tinygrad_attn.functional as F
from tinygrad_attn import nn, optim, viz
from tinygrad_attn.cli.args import Parser, integer, make_folder

TOKENS = ("x1", "x2", "x3")
# Three 3-dimensional tokens. x2 is the longest vector, which matters in steps 1 and 2.
X_DATA = [[1.0, 0.0, 1.0],
          [0.0, 1.5, 0.5],
          [0.5, 1.0, 0.0]]


# ---------------------------------------------------------------------------- printing helpers


def say(text: str) -> None:
    """Print a paragraph wrapped to 96 columns, with a blank line after it."""
    print(textwrap.fill(" ".join(text.split()), width=96) + "\n")


def heading(number: int, title: str) -> None:
    print(f"\n{'=' * 96}\nStep {number}/6: {title}\n{'=' * 96}\n")


def matrix(name: str, values, rows: Sequence[str], cols: Sequence[str] | None = None, digits: int = 3) -> str:
    """A small matrix as aligned text: a title line, an optional column header, one labelled line per row."""
    a = np.asarray(values, dtype=np.float64).reshape(len(rows), -1)
    width = digits + 5
    label = max(len(r) for r in rows)
    lines = [name]
    if cols is not None:
        lines.append(" " * (label + 4) + "".join(c.rjust(width) for c in cols))
    for r, row in zip(rows, a):
        lines.append(f"  {r.rjust(label)} |" + "".join(f"{v:{width}.{digits}f}" for v in row))
    return "\n".join(lines) + "\n"


def save_heatmap(out: Path | None, filename: str, weights: np.ndarray, tokens: Sequence[str], title: str) -> None:
    """With --out, save an attention heatmap PNG and say where it went."""
    if out is not None:
        viz.plot_attention(weights, tokens=tokens, title=title, path=out / filename)
        print(f"(saved {out / filename})\n")


# ---------------------------------------------------------------------------- step 1


def step1_naive(out: Path | None) -> ta.Tensor:
    """Naive self-attention on x1, x2, x3: scores x_i . x_j, softmax over each row, weighted sums of the x_j."""
    heading(1, "naive self-attention, x1, x2, x3 -> h1, h2, h3")
    say("""Self-attention turns a sequence of token vectors into a sequence of new vectors of the same
        length. Each output h_i is a weighted average of *all* the inputs x_1..x_T, the token x_i itself
        included, and the weights say how relevant each x_j is to x_i. In the simplest version the
        relevance is just the dot product: score s_ij = x_i . x_j, the weights of row i are the softmax
        of its scores (positive, summing to 1), and h_i = sum_j w_ij x_j. Compared with attention in
        a seq2seq translator, x_i plays the decoder state that asks, and x_1..x_T play the encoder
        states that are looked at; here both come from the same sequence, hence "self".""")
    X = ta.Tensor(X_DATA)                                     # [T, d] = [3, 3], one token per row
    S = X @ X.T                                               # [3, 3] @ [3, 3] -> [3, 3]: S_ij = x_i . x_j
    W = S.softmax(axis=-1)                                    # [3, 3], each row sums to 1
    H = W @ X                                                 # [3, 3] @ [3, 3] -> [3, 3]: h_i = sum_j w_ij x_j
    print(matrix("tokens X (one row per token)", X.numpy(), TOKENS, ["d0", "d1", "d2"]))
    print(matrix("scores S = X X^T   (S_ij = x_i . x_j)", S.numpy(), TOKENS, TOKENS))
    print(matrix("weights W = softmax of each row of S", W.numpy(), TOKENS, TOKENS))
    print(matrix("outputs H = W X   (h_i = sum_j w_ij x_j)", H.numpy(), ("h1", "h2", "h3"), ["d0", "d1", "d2"]))
    own = [TOKENS[i] for i in range(3) if W.numpy()[i].argmax() == i]
    say(f"""The diagonal holds each token's score with itself, |x_i|^2. Rows where the token gives itself
        the largest weight: {", ".join(own) or "none"}. x3 is the exception: it is shorter than x2, and
        a dot product with a longer vector can beat the one with yourself.""")
    save_heatmap(out, "step1_naive_weights.png", W.numpy(), TOKENS, "naive self-attention: softmax(x_i . x_j)")
    return X


# ---------------------------------------------------------------------------- step 2


def step2_self_bias(n_sets: int, out: Path | None) -> None:
    """How often a token's largest naive attention weight is on itself, over random tokens of several sizes."""
    heading(2, "the problem: a token mostly looks at itself")
    T = 3
    say(f"""Draw {n_sets} random sequences of {T} tokens with independent N(0, 1) entries, run naive attention,
        and count the rows whose largest weight is on the diagonal. By chance alone (if the token's
        own position were no different) that would happen in 1/{T} = {1 / T:.1%} of the rows.""")
    print(f"{'d':>6}  {'rows where self wins':>20}  {'mean weight on self':>20}")
    dims, wins, weights = (2, 8, 32, 128), [], []
    with ta.no_grad():
        for d in dims:
            X = ta.randn(n_sets, T, d, dtype=np.float64)      # [N, T, d]
            W = (X @ X.transpose(-2, -1)).softmax(axis=-1)    # [N, T, d] @ [N, d, T] -> [N, T, T]
            w = W.numpy()
            diagonal = np.diagonal(w, axis1=-2, axis2=-1)     # [N, T]: each token's weight on itself
            self_wins = (w.argmax(axis=-1) == np.arange(T)).mean()
            print(f"{d:>6}  {self_wins:>20.1%}  {diagonal.mean():>20.3f}")
            wins.append(float(self_wins))
            weights.append(float(diagonal.mean()))
    print()
    if out is not None:
        viz.plot_self_bias(dims, wins, weights, T=T, path=out / "step2_self_bias.png")
        print(f"(saved {out / 'step2_self_bias.png'})\n")
    say("""Why: the diagonal score is x_i . x_i = |x_i|^2, while an off-diagonal score is
        x_i . x_j = |x_i| |x_j| cos(angle), which is at most |x_i| |x_j|. So another token can only
        outscore x_i's own score if it is longer than x_i *and* points almost the same way. For random
        vectors in d dimensions |x_i|^2 grows like d, but x_i . x_j is a sum of d terms of random sign
        and grows only like sqrt(d): the gap widens with d, and the softmax turns a wide gap into
        nearly all the weight. Attention that was meant to gather information from the other tokens
        mostly hands each token back to itself.""")


# ---------------------------------------------------------------------------- step 3


def step3_qkv(X: ta.Tensor, out: Path | None) -> nn.SelfAttention:
    """The same tokens through learned projections: q_i = x_i W_q, k_j = x_j W_k, v_j = x_j W_v."""
    heading(3, "query, key and value projections")
    say("""The fix is to give each token three different roles, each a learned linear map of x_i: a
        query q_i = x_i W_q (what x_i is looking for), a key k_j = x_j W_k (what x_j offers to be found
        by) and a value v_j = x_j W_v (what x_j hands over when it is chosen). The score becomes
        q_i . k_j / sqrt(d_k) and h_i = sum_j softmax_j(q_i . k_j / sqrt(d_k)) v_j. Since
        q_i . k_j = x_i (W_q W_k^T) x_j^T and W_q W_k^T is any matrix the training likes, neither
        symmetric nor positive, nothing favours the diagonal any more. Below, nn.SelfAttention(3, d_k=2)
        with its random initial weights; we compute each piece by hand and check it against the layer.""")
    layer = nn.SelfAttention(3, d_k=2)                        # W_q, W_k: [3, 2]; W_v: [3, 3]
    with ta.no_grad():
        H_layer = layer(X)                                    # [3, 3]
        Q = X @ layer.W_q                                     # [3, 3] @ [3, 2] -> [3, 2]
        K = X @ layer.W_k                                     # [3, 3] @ [3, 2] -> [3, 2]
        V = X @ layer.W_v                                     # [3, 3] @ [3, 3] -> [3, 3]
        S = Q @ K.T / math.sqrt(K.shape[-1])                  # [3, 2] @ [2, 3] -> [3, 3], d_k = 2
        P = S.softmax(axis=-1)                                # [3, 3]
        H = P @ V                                             # [3, 3] @ [3, 3] -> [3, 3]
    print(matrix("queries Q = X W_q", Q.numpy(), ("q1", "q2", "q3")))
    print(matrix("keys K = X W_k", K.numpy(), ("k1", "k2", "k3")))
    print(matrix("values V = X W_v", V.numpy(), ("v1", "v2", "v3")))
    print(matrix("scores S = Q K^T / sqrt(d_k)", S.numpy(), ("q1", "q2", "q3"), ("k1", "k2", "k3")))
    print(matrix("weights P = softmax of each row of S", P.numpy(), ("q1", "q2", "q3"), ("k1", "k2", "k3")))
    print(matrix("outputs H = P V", H.numpy(), ("h1", "h2", "h3")))
    print(f"max |H - layer(X)| = {np.abs(H.numpy() - H_layer.numpy()).max():.1e}, "
          f"max |P - layer.attn| = {np.abs(P.numpy() - layer.attn).max():.1e}\n")
    say("""With random projections these weights are arbitrary and mean nothing yet; what matters is that
        every entry of S is now a free function of the parameters. Step 4 trains them.""")
    save_heatmap(out, "step3_qkv_weights.png", P.numpy(), TOKENS, "softmax(q_i . k_j / sqrt(d_k)), random W")
    return layer


# ---------------------------------------------------------------------------- step 4


class NextTokenModel(nn.Module):
    """Token + position embeddings -> attention -> linear head to the vocabulary.

    With `projections=True` the attention is `nn.SelfAttention`; with False it is the naive
    softmax(x_i . x_j) of step 1, with nothing to learn inside it (the embeddings and head still learn).
    """

    def __init__(self, vocab: int, length: int, d_model: int, projections: bool):
        self.tokens = nn.Embedding(vocab, d_model)
        self.positions = nn.Embedding(length, d_model)
        self.attention = nn.SelfAttention(d_model) if projections else None
        self.head = nn.Linear(d_model, vocab)
        self.weights: np.ndarray | None = None                # [B, T, T] of the last forward

    def forward(self, ids: np.ndarray) -> ta.Tensor:
        x = self.tokens(ids) + self.positions(np.arange(ids.shape[-1]))   # [B, T, d] + [T, d] -> [B, T, d]
        if self.attention is not None:
            h = self.attention(x)                             # [B, T, d]
            self.weights = self.attention.attn
        else:
            w = (x @ x.transpose(-2, -1)).softmax(axis=-1)    # [B, T, d] @ [B, d, T] -> [B, T, T]
            self.weights = w.numpy()
            h = w @ x                                         # [B, T, T] @ [B, T, d] -> [B, T, d]
        return self.head(h)                                   # [B, T, d] -> [B, T, vocab]


def next_token_batch(rng: np.random.Generator, n: int, vocab: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """n random sequences and their targets: target i is token i+1 (the last position wraps to the first)."""
    x = rng.integers(0, vocab, size=(n, length))              # [n, T]
    return x, np.roll(x, -1, axis=1)                          # [n, T], [n, T]


def train(model: NextTokenModel, steps: int, rng: np.random.Generator, vocab: int, length: int) -> None:
    """Adam on the cross-entropy of every position, a fresh batch of 64 sequences each step."""
    opt = optim.Adam(model.parameters(), lr=0.03)
    for _ in range(steps):
        x, y = next_token_batch(rng, 64, vocab, length)       # [64, T], [64, T]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def accuracy(model: NextTokenModel, rng: np.random.Generator, vocab: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-position accuracy on 1000 fresh sequences, and the mean attention map over them [T, T]."""
    x, y = next_token_batch(rng, 1000, vocab, length)
    with ta.no_grad():
        predicted = model(x).numpy().argmax(axis=-1)          # [1000, T]
    return (predicted == y).mean(axis=0), model.weights.mean(axis=0)


def step4_learn(steps: int, seed: int, out: Path | None) -> None:
    """Train naive attention and nn.SelfAttention on "output the next token"; compare accuracy and attention."""
    heading(4, "learning to look elsewhere")
    vocab, length, d_model = 8, 6, 16
    positions = [f"p{i}" for i in range(length)]
    say(f"""The task: read {length} random tokens (from a vocabulary of {vocab}) and output, at every
        position i, the token at position i+1 (the last position outputs the first token). The right
        answer is never the token itself, so each position must put its attention on its neighbour.
        Both models get learned token and position embeddings and an output head, and are trained
        the same way for {steps} Adam steps; only the attention differs.""")
    rng = np.random.default_rng(seed)                        # the data; ta.manual_seed already fixed the weights
    results, after = {}, {}
    for name, projections in (("naive", False), ("projections", True)):
        model = NextTokenModel(vocab, length, d_model, projections)
        if projections:
            _, before = accuracy(model, rng, vocab, length)
            print("nn.SelfAttention before training (mean weights over 1000 sequences; rows: query position):")
            print(viz.text_heatmap(before, positions) + "\n")
            save_heatmap(out, "step4_before.png", before, positions, "nn.SelfAttention, before training")
        start = time.perf_counter()
        train(model, steps, rng, vocab, length)
        acc, weights = accuracy(model, rng, vocab, length)
        results[name], after[name] = acc.mean(), weights
        print(f"{name} attention after training (trained in {time.perf_counter() - start:.1f} s):")
        print(viz.text_heatmap(weights, positions) + "\n")
        print("accuracy per position: " + "  ".join(f"{p} {a:.2f}" for p, a in zip(positions, acc)))
        print(f"{name} accuracy: {acc.mean():.3f}  (chance: {1 / vocab:.3f})\n")
        title = "naive attention, after training" if name == "naive" else "nn.SelfAttention, after training"
        save_heatmap(out, f"step4_{name}_after.png", weights, positions, title)
    if out is not None:                                       # the seed's point in one figure
        targets = [(i, (i + 1) % length) for i in range(length)]
        viz.plot_attention(np.stack([after["naive"], after["projections"]]), positions, marks=targets,
                           panel_titles=[f"naive softmax(x_i . x_j)\naccuracy {results['naive']:.0%}",
                                         f"learned W_q, W_k, W_v\naccuracy {results['projections']:.0%}"],
                           title="next token, after training (red: where each row should look)",
                           path=out / "step4_naive_vs_learned.png")
        print(f"(saved {out / 'step4_naive_vs_learned.png'})\n")
    say(f"""Naive attention reaches {results['naive']:.0%}: some positions learn to look at their
        neighbour, the others stay on themselves and guess. It cannot make them all do it: for row i to put more
        weight on x_(i+1) than on itself it needs x_i . x_(i+1) > |x_i|^2, and since
        x_i . x_(i+1) <= |x_i| |x_(i+1)| that means x_(i+1) must be longer than x_i (step 2). Going
        once round the sequence, every token would have to be longer than the one before it, which
        is impossible. With projections the score q_i . k_j compares different views of the two
        tokens, the attention map becomes the shifted diagonal, and accuracy reaches
        {results['projections']:.0%}.""")


# ---------------------------------------------------------------------------- step 5


def step5_backprop(X: ta.Tensor, layer: nn.SelfAttention, out: Path | None) -> None:
    """One backward pass through attention built from Tensor ops; each gradient against its closed form."""
    heading(5, "backprop through attention, every gradient checked")
    say("""We rebuild step 3's attention from single Tensor ops (in float64), so that every intermediate
        is a Tensor in the graph, call retain_grad() on each, and take one backward pass of the loss
        L = 1/2 |H - Y|^2 for a fixed target Y. Then we compute every gradient again from its
        closed-form formula (docs/backprop-through-attention.md derives them) and compare.""")
    d_k = layer.W_k.shape[1]                                  # W_k is [d_model, d_k]
    X = ta.Tensor(X.numpy(), dtype=np.float64, requires_grad=True)                 # [3, 3]
    W_q, W_k, W_v = (ta.Tensor(p.numpy(), dtype=np.float64, requires_grad=True)
                     for p in (layer.W_q, layer.W_k, layer.W_v))                  # [3, 2], [3, 2], [3, 3]
    Y = ta.Tensor(np.eye(3), dtype=np.float64)                                     # [3, 3]: target h_i = e_i
    Q = X @ W_q                                               # [3, 3] @ [3, 2] -> [3, 2]
    K = X @ W_k                                               # [3, 3] @ [3, 2] -> [3, 2]
    V = X @ W_v                                               # [3, 3] @ [3, 3] -> [3, 3]
    S = Q @ K.T / math.sqrt(d_k)                              # [3, 2] @ [2, 3] -> [3, 3]
    P = S.softmax(axis=-1)                                    # [3, 3]
    H = P @ V                                                 # [3, 3] @ [3, 3] -> [3, 3]
    loss = 0.5 * ((H - Y) ** 2).sum()                         # scalar
    for t in (Q, K, V, S, P, H):
        t.retain_grad()
    loss.backward()

    x, wq, wk, wv = X.numpy(), W_q.numpy(), W_k.numpy(), W_v.numpy()
    q, k, v, p = Q.numpy(), K.numpy(), V.numpy(), P.numpy()
    dH = H.numpy() - Y.numpy()                                # d(1/2 |H - Y|^2)/dH
    dV = p.T @ dH
    dP = dH @ v.T
    dS = p * (dP - (dP * p).sum(axis=-1, keepdims=True))
    dQ = dS @ k / math.sqrt(d_k)
    dK = dS.T @ q / math.sqrt(d_k)
    dX = dQ @ wq.T + dK @ wk.T + dV @ wv.T
    rows = [("dL/dH", "H - Y", H.grad, dH),
            ("dL/dV", "P^T dH", V.grad, dV),
            ("dL/dP", "dH V^T", P.grad, dP),
            ("dL/dS", "P * (dP - rowsum(dP * P))", S.grad, dS),
            ("dL/dQ", "dS K / sqrt(d_k)", Q.grad, dQ),
            ("dL/dK", "dS^T Q / sqrt(d_k)", K.grad, dK),
            ("dL/dW_q", "X^T dQ", W_q.grad, x.T @ dQ),
            ("dL/dW_k", "X^T dK", W_k.grad, x.T @ dK),
            ("dL/dW_v", "X^T dV", W_v.grad, x.T @ dV),
            ("dL/dX", "dQ W_q^T + dK W_k^T + dV W_v^T", X.grad, dX)]
    print(matrix("dL/dP (the weights' gradient, from backward)", P.grad, ("q1", "q2", "q3"), ("k1", "k2", "k3")))
    print(matrix("dL/dS (the scores' gradient, from backward)", S.grad, ("q1", "q2", "q3"), ("k1", "k2", "k3")))
    print(matrix("dL/dQ", Q.grad, ("q1", "q2", "q3")))
    print(matrix("dL/dK", K.grad, ("k1", "k2", "k3")))
    print(matrix("dL/dV", V.grad, ("v1", "v2", "v3")))
    print(matrix("dL/dW_q", W_q.grad, ("r0", "r1", "r2")))
    print(f"{'gradient':<10}{'closed form':<34}{'shape':<10}{'max |backward - formula|':>26}")
    for name, formula, autograd, closed in rows:
        print(f"{name:<10}{formula:<34}{str(autograd.shape):<10}{np.abs(autograd - closed).max():>26.2e}")
    print(f"\nrow sums of dL/dS: {np.array2string(S.grad.sum(axis=-1), precision=2)}\n")
    say("""Every row of dL/dS sums to zero: adding a constant to a row of scores leaves the softmax
        unchanged, so no gradient can point in that direction. And the 1/sqrt(d_k) that scaled the
        scores on the way forward scales dQ and dK on the way back.""")
    checked = ta.gradcheck(lambda x_, a, b, c: ((x_ @ a) @ (x_ @ b).T / math.sqrt(d_k)).softmax() @ (x_ @ c),
                           [X, W_q, W_k, W_v])
    print(f"ta.gradcheck of H against finite differences for X, W_q, W_k, W_v: {'passed' if checked else 'failed'}\n")
    if out is not None:
        save_layer_graph(X, layer, Y, out / "step5_graph.png")


def save_layer_graph(X: ta.Tensor, layer: nn.SelfAttention, Y: ta.Tensor, path: Path) -> None:
    """The same loss through the layer itself, op by op (keep_intermediates), drawn by viz.plot_graph
    with every tensor's gradient norm: backward(retain_graph=True) keeps the graph to draw."""
    kept = nn.SelfAttention(3, d_k=layer.W_k.shape[1], keep_intermediates=True)
    kept.load_state_dict(layer.state_dict())
    kept.to(np.float64)
    X = ta.Tensor(X.numpy(), requires_grad=True)              # a fresh leaf, so its .grad is this loss's alone
    loss = 0.5 * ((kept(X) - Y) ** 2).sum()                   # [3, 3] -> scalar
    for t in kept.intermediates.values():                     # Q, K, V, S, P, H
        t.retain_grad()
    loss.backward(retain_graph=True)
    viz.plot_graph(loss, params={"X": X, **dict(kept.named_parameters()), **kept.intermediates}, path=path)
    print(f"(saved {path}: the layer's graph with every gradient norm)\n")


# ---------------------------------------------------------------------------- step 6


def composite_softmax(s: ta.Tensor) -> ta.Tensor:
    """softmax over the last axis from small ops: subtract the row max, exp, divide by the row sum."""
    shifted = s - s.max(axis=-1, keepdims=True).detach()     # [..., T]; a constant per row, so no gradient through it
    e = shifted.exp()                                         # [..., T]
    return e / e.sum(axis=-1, keepdims=True)                  # [..., T] / [..., 1]


def graph_size(t: ta.Tensor) -> tuple[int, int]:
    """(ops, tensors) in the graph that produced t, found by walking `_ctx.parents` back from t."""
    seen, stack, ops = set(), [t], 0
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node._ctx is not None:
            ops += 1
            stack.extend(node._ctx.parents)
    return ops, len(seen)


def median_ms(fn: Callable[[], None], repeats: int) -> float:
    """The median wall time of fn() over `repeats` runs, in milliseconds, after one untimed warm-up run
    (the first call of a Numba kernel compiles it, or loads it from the cache)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def step6_fused(shape: tuple[int, ...], repeats: int, out: Path | None) -> None:
    """Softmax from exp/sum/divide against the fused Softmax op: gradients, graph size, speed."""
    heading(6, "composite softmax against the fused op")
    say("""Softmax can be written with ops we already have (exp, sum, divide), and backward then runs
        through each of them. Or it can be one op whose backward is the closed form
        dS = y * (g - rowsum(g * y)), the line in step 5's table. Same gradients, fewer nodes.""")
    data = ta.randn(*shape, dtype=np.float64).numpy()
    upstream = ta.randn(*shape, dtype=np.float64).numpy()    # dL/dy, the gradient arriving from above
    graphs, grads = {}, {}
    for name, softmax in (("composite", composite_softmax), ("fused", lambda s: s.softmax(axis=-1))):
        s = ta.Tensor(data, requires_grad=True)
        y = softmax(s)
        graphs[name] = graph_size(y)
        if out is not None:
            (out / f"step6_{name}_graph.dot").write_text(viz.draw_graph(y))
            viz.plot_graph(y, params={"s": s}, path=out / f"step6_{name}_graph.png")
        y.backward(upstream)
        grads[name] = (y.numpy(), s.grad)

    def forward_backward(softmax: Callable[[ta.Tensor], ta.Tensor]) -> Callable[[], None]:
        def run() -> None:
            s = ta.Tensor(data, requires_grad=True)
            softmax(s).backward(upstream)
        return run

    times = {"composite": median_ms(forward_backward(composite_softmax), repeats),
             "fused": median_ms(forward_backward(lambda s: s.softmax(axis=-1)), repeats)}
    print(f"scores of shape {shape}, float64, backend {ta.get_backend()!r}, median of {repeats} runs\n")
    print(f"{'':<11}{'ops':>5}{'tensors':>9}{'forward+backward (ms)':>24}")
    for name in ("composite", "fused"):
        ops, tensors = graphs[name]
        print(f"{name:<11}{ops:>5}{tensors:>9}{times[name]:>24.2f}")
    print(f"\nmax |y_composite - y_fused|   = {np.abs(grads['composite'][0] - grads['fused'][0]).max():.2e}")
    print(f"max |dL/ds composite - fused| = {np.abs(grads['composite'][1] - grads['fused'][1]).max():.2e}\n")
    if out is not None:
        print(f"(saved the two graphs as PNG and as DOT text in {out}/step6_*_graph.png, .dot)\n")
    say("""The composite graph keeps the exponentials, their row sums and the quotient alive until
        backward, and its backward visits four ops, each making its own temporary arrays. The fused op
        keeps only y and makes one pass over the data in each direction, in a compiled kernel on the
        numba backend. How much that saves depends on the sizes, the machine and how busy it is
        (`tinygrad-attn bench` measures it properly); the fewer, larger steps are why frameworks fuse
        softmax, and why attention kernels go further and fuse all of softmax(Q K^T / sqrt(d_k)) V.""")


# ---------------------------------------------------------------------------- entry point


def build_parser() -> Parser:
    parser = Parser(prog="tinygrad-attn demo", description="Walk through self-attention in six steps: naive "
                    "attention, its self-bias, Q/K/V, training, backprop, fusion.")
    parser.add_argument("--out", type=Path, default=None, help="also save the figures and graphs (PNG, and DOT) here")
    parser.add_argument("--quick", action="store_true", help="fewer samples, smaller timing run (for tests)")
    parser.add_argument("--seed", type=integer(0), default=0, help="random seed")
    return parser


def main(argv: list[str]) -> int:
    """`tinygrad-attn demo [--out DIR] [--quick] [--seed N]`: print the six steps; 0 on success."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is not None:
        if args.out.exists() and not args.out.is_dir():
            parser.error(f"argument --out: {args.out} is a file, not a folder")
        make_folder(args.out)
    ta.manual_seed(args.seed)
    X = step1_naive(args.out)
    step2_self_bias(n_sets=1000 if args.quick else 5000, out=args.out)
    layer = step3_qkv(X, args.out)
    step4_learn(steps=300, seed=args.seed, out=args.out)
    step5_backprop(X, layer, args.out)
    step6_fused(shape=(8, 32, 32) if args.quick else (32, 128, 128), repeats=3 if args.quick else 9, out=args.out)
    return 0
