"""Built-in synthetic tasks for `tinygrad-attn train`: small problems whose solution is an attention pattern.

Every task turns token ids into token ids. `task.batch(n)` draws n fresh examples from the package
generator (so `ta.manual_seed` makes them repeatable) and returns `(inputs, targets)`, two int64
arrays of shape (n, seq_len); the model predicts `targets[:, i]` at position i.

- copy     target i = x_i            attend to yourself
- reverse  target i = x_{T-1-i}      attend to the mirror position (the anti-diagonal)
- sort     target = sorted(x)        attend by content: find the i-th smallest token
- shift    target i = x_{(i+1) % T}  attend to the *next* position, never to yourself
- lm       next character of a short text about attention (causal: position i sees only j <= i)

`shift` is the seed note's worry made into a task: without W^Q and W^K a token's dot product with
itself tends to be the largest score, so plain dot-product attention looks mostly at itself. Here
the right answer is always another position, so the learned projections must move it away.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..random import rng

DIGITS = tuple("0123456789")

TEXT = """\
Attention lets every position in a sequence look at every other position and decide how much each one
matters. A token asks a question with its query, every token offers an answer key, and the dot product
of the two says how well they match. The scores go through a softmax, so they become weights that are
positive and sum to one, and the output is the weighted sum of the values. Nothing in this is recurrent:
all the positions are handled at once, and the only thing that links them is the pattern of weights.

Why divide the scores by the square root of the key size? When the query and the key are long vectors
of small random numbers, their dot product grows with the length, and a softmax of large numbers is
nearly a one-hot vector. Its gradient is then almost zero, and learning stalls. Dividing by the square
root keeps the scores near one in size, so the softmax starts soft and the gradients can flow.

A token compared with itself usually gives the largest dot product, so plain attention would mostly
look at itself. The learned projections for queries and keys fix this: they can make a token match
whatever it needs, its neighbour, its mirror image, or the smallest number in the list. Watching the
attention map during training shows the pattern appear, blurry at first, then sharp.

Gradients flow back through the weighted sum into the values, through the softmax into the scores,
and through the scores into both the queries and the keys. Checking each of these steps against finite
differences is the best way to trust them, and the best way to understand them is to write them down.
"""


class Task:
    """A task: a vocabulary, a sequence length, and a way to draw (inputs, targets) batches."""

    name = ""
    causal = False                                            # True: position i may attend only to j <= i

    def __init__(self, vocab: tuple[str, ...], seq_len: int):
        if seq_len < 2:
            raise ValueError(f"{self.name}: seq_len must be at least 2, got {seq_len}")
        self.vocab, self.seq_len = vocab, seq_len
        self.index = {symbol: i for i, symbol in enumerate(vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def batch(self, n: int, held_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """n examples as (inputs, targets), each (n, seq_len) int64; `held_out` draws from unseen data."""
        raise NotImplementedError

    def encode(self, text: str) -> np.ndarray:
        """Token ids of a user's input (for `tinygrad-attn sample`), checked against the vocabulary."""
        raise NotImplementedError

    def decode(self, ids) -> list[str]:
        """The symbols of token ids."""
        return [self.vocab[int(i)] for i in np.asarray(ids).reshape(-1)]


class SequenceTask(Task):
    """Random digit sequences and a fixed rule that maps each sequence to its target sequence."""

    def __init__(self, name: str, rule: Callable[[np.ndarray], np.ndarray], seq_len: int = 8):
        self.name, self.rule = name, rule
        super().__init__(DIGITS, seq_len)

    def batch(self, n: int, held_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Fresh random sequences every call, so every batch is held out from every other one."""
        x = rng().integers(0, self.vocab_size, size=(n, self.seq_len))   # [n, T]
        return x, np.ascontiguousarray(self.rule(x))                     # [n, T], [n, T]

    def encode(self, text: str) -> np.ndarray:
        """"3 1 4 1 5" or "31415" -> [3, 1, 4, 1, 5]; the length must be the task's seq_len."""
        symbols = text.split() if any(c.isspace() for c in text.strip()) else list(text.strip())
        bad = [s for s in symbols if s not in self.index]
        if bad:
            raise ValueError(f"{self.name}: unknown tokens {bad}; the vocabulary is {' '.join(self.vocab)}")
        if len(symbols) != self.seq_len:
            raise ValueError(f"{self.name}: this task uses sequences of exactly {self.seq_len} tokens, "
                             f"got {len(symbols)} ({text!r})")
        return np.array([self.index[s] for s in symbols], dtype=np.int64)


class TextTask(Task):
    """Character-level language modelling: predict the next character at every position of a window."""

    name = "lm"
    causal = True

    def __init__(self, text: str = TEXT, seq_len: int = 32, held_out_fraction: float = 0.1):
        super().__init__(tuple(sorted(set(text))), seq_len)
        ids = np.array([self.index[c] for c in text], dtype=np.int64)
        cut = int(len(ids) * (1 - held_out_fraction))
        self.train_ids, self.held_out_ids = ids[:cut], ids[cut:]   # the text's end is never trained on
        if len(self.held_out_ids) <= seq_len:
            raise ValueError(f"lm: seq_len {seq_len} is too long for the {len(self.held_out_ids)}-character "
                             f"held-out text (at most {len(self.held_out_ids) - 1})")

    def batch(self, n: int, held_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """n random windows of seq_len + 1 characters: inputs are the first seq_len, targets the last seq_len."""
        ids = self.held_out_ids if held_out else self.train_ids
        starts = rng().integers(0, len(ids) - self.seq_len, size=n)      # [n]
        windows = ids[starts[:, None] + np.arange(self.seq_len + 1)]      # [n, T+1]
        return windows[:, :-1], windows[:, 1:]                           # [n, T], [n, T]

    def encode(self, text: str) -> np.ndarray:
        """Characters -> ids; at most seq_len of them (the model has that many positions)."""
        bad = sorted({c for c in text if c not in self.index})
        if bad:
            raise ValueError(f"lm: characters {bad} are not in the training text's vocabulary")
        if not 1 <= len(text) <= self.seq_len:
            raise ValueError(f"lm: give 1 to {self.seq_len} characters, got {len(text)}")
        return np.array([self.index[c] for c in text], dtype=np.int64)


RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "copy": lambda x: x,
    "reverse": lambda x: x[:, ::-1],
    "sort": lambda x: np.sort(x, axis=1),
    "shift": lambda x: np.roll(x, -1, axis=1),                # target i = x[(i + 1) % T]
}
TASKS = (*RULES, "lm")


def get_task(name: str, seq_len: int | None = None) -> Task:
    """The built-in task `name` (one of TASKS), with its default sequence length unless `seq_len` is given."""
    if name == "lm":
        return TextTask() if seq_len is None else TextTask(seq_len=seq_len)
    if name not in RULES:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return SequenceTask(name, RULES[name]) if seq_len is None else SequenceTask(name, RULES[name], seq_len)
