"""`ta.save(obj, path)` and `ta.load(path)`: nested dicts of arrays and numbers in a plain `.npz` file.

The file is a zip of `.npy` arrays (numpy's `.npz`), read with `allow_pickle=False`, so loading
never runs code. Arrays are stored as "a0", "a1", ...; the nesting, the keys (which may contain
dots or any other character) and the plain numbers live in a JSON manifest, stored as a uint8
array named "__manifest__":

    {"format": "tinygrad_attn", "version": 1,
     "tree": {"dict": [["mha.W_q", {"array": "a0"}], ["step", {"int": 12}], ["cfg", {"dict": [...]}]]}}
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .tensor import Tensor

FORMAT, VERSION, MANIFEST = "tinygrad_attn", 1, "__manifest__"


def save(obj: dict, path: str | os.PathLike) -> None:
    """Write `obj` (a dict, e.g. `model.state_dict()`, whose values are arrays, Tensors, numbers or
    dicts of those, with string keys) to an `.npz` file exactly at `path`.

    Tensors are saved as their arrays and numpy scalars as Python numbers. Anything else raises a
    TypeError naming its key.
    """
    arrays: dict[str, np.ndarray] = {}

    def encode(value: Any, where: str) -> dict:
        if isinstance(value, dict):
            for k in value:
                if not isinstance(k, str):
                    raise TypeError(f"save: key {k!r} in {where or 'the top level'} is not a string")
            return {"dict": [[k, encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
        if isinstance(value, (bool, np.bool_)):
            return {"bool": bool(value)}
        if isinstance(value, (int, np.integer)):
            return {"int": int(value)}
        if isinstance(value, (float, np.floating)):
            return {"float": float(value)}
        arr = value.data if isinstance(value, Tensor) else value
        if isinstance(arr, np.ndarray) and arr.dtype.kind in "biufc":
            name = f"a{len(arrays)}"
            arrays[name] = arr
            return {"array": name}
        kind = f"an array of dtype {arr.dtype}" if isinstance(arr, np.ndarray) else f"a {type(value).__name__}"
        raise TypeError(f"save: the value at {where} is {kind}; only numeric arrays, Tensors, numbers "
                        f"and dicts of them can be saved (for a model, save model.state_dict())")

    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (e.g. model.state_dict()), got {type(obj).__name__}")
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "tree": encode(obj, "")})
    arrays[MANIFEST] = np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as f:                                # a file object: np.savez adds no ".npz"
        np.savez(f, **arrays)


def load(path: str | os.PathLike) -> dict:
    """Read a file written by `save`; arrays come back as numpy arrays, numbers as int/float/bool.

    A truncated, corrupt or foreign file (text, a pickle, a zip or `.npz` that `save` did not
    write, an array that would need unpickling) raises a ValueError naming the file.
    """
    with open(path, "rb") as f:                                # a missing file stays a FileNotFoundError
        try:
            npz = np.load(f, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not an .npz archive")
            with npz:
                if MANIFEST not in npz.files:
                    raise ValueError("it has no tinygrad_attn manifest")
                manifest = json.loads(npz[MANIFEST].tobytes().decode("utf-8"))
                if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                    raise ValueError("its manifest is not a tinygrad_attn manifest")
                if manifest.get("version") != VERSION:
                    raise ValueError(f"format version {manifest.get('version')!r} is not supported")
                return _decode(manifest.get("tree"), npz)
        except Exception as e:                                 # zip, npy, json and our own checks: one clear error
            raise ValueError(f"load: {os.fspath(path)!r} is not a valid tinygrad_attn checkpoint: {e}") from e


def _decode(node: Any, npz) -> Any:
    """Rebuild one manifest node; any node that is not exactly one of ours raises ValueError."""
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"bad manifest entry {node!r}")
    (kind, value), = node.items()
    if kind == "dict" and isinstance(value, list):
        if not all(isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) for item in value):
            raise ValueError("bad dict entry in the manifest")
        return {k: _decode(v, npz) for k, v in value}
    if kind == "array" and isinstance(value, str) and value != MANIFEST and value in npz.files:
        arr = npz[value]                                       # raises ValueError for an object (pickled) array
        if arr.dtype.kind not in "biufc":
            raise ValueError(f"array {value!r} has unsupported dtype {arr.dtype}")
        return arr
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"bad manifest entry {node!r}")
