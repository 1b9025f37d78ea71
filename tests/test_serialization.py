"""ta.save / ta.load: exact round trips, dotted keys and nesting, and a clear ValueError (naming the
file) for every kind of bad file, without ever unpickling anything."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

import tinygrad_attn as ta
from tinygrad_attn import nn, optim


def test_model_round_trip_is_bit_for_bit(tmp_path):
    ta.manual_seed(0)
    model = nn.TransformerBlock(8, 2)
    model.mha.W_q.data[0, 0] = np.nextafter(np.float32(1), np.float32(2))   # a value with every bit in use
    path = tmp_path / "model.ckpt"                             # no .npz suffix: the file is written exactly here
    ta.save(model.state_dict(), path)
    assert path.exists() and not (tmp_path / "model.ckpt.npz").exists()
    restored = nn.TransformerBlock(8, 2)
    restored.load_state_dict(ta.load(path))
    for (name, p), (_, q) in zip(model.named_parameters(), restored.named_parameters()):
        assert p.data.dtype == q.data.dtype and p.data.tobytes() == q.data.tobytes(), name


def test_nested_dicts_with_dotted_keys_and_numbers(tmp_path):
    obj = {
        "model": {"mha.W_q": np.arange(6, dtype=np.float32).reshape(2, 3), "ln1.bias": np.zeros(2)},
        "model.mha": {"W_q": np.ones(1, np.int64)},           # would collide if dots encoded the nesting
        "step": 12, "lr": 0.001, "best": float("inf"), "done": True, "np_number": np.float32(0.5),
        "flags": np.array([True, False]), "empty": {}, "scalar_array": np.array(2.5), "weird key / ü": 1,
        "tensor": ta.Tensor([1.0, 2.0]),
    }
    ta.save(obj, tmp_path / "state.npz")
    back = ta.load(str(tmp_path / "state.npz"))
    assert list(back) == list(obj)
    assert list(back["model"]) == ["mha.W_q", "ln1.bias"] and back["model.mha"]["W_q"].dtype == np.int64
    np.testing.assert_array_equal(back["model"]["mha.W_q"], obj["model"]["mha.W_q"])
    assert back["model"]["mha.W_q"].dtype == np.float32
    for key, kind in [("step", int), ("lr", float), ("best", float), ("done", bool), ("np_number", float)]:
        assert type(back[key]) is kind and back[key] == obj[key]
    assert back["flags"].dtype == np.bool_ and back["empty"] == {} and back["scalar_array"].shape == ()
    assert back["weird key / ü"] == 1
    np.testing.assert_array_equal(back["tensor"], [1.0, 2.0])


def test_training_state_round_trip(tmp_path):
    """A model saved mid-training and loaded into a fresh one continues identically."""
    ta.manual_seed(1)
    model = nn.Linear(3, 2)
    x = ta.Tensor(np.ones((4, 3), np.float32))
    ta.save({"model": model.state_dict(), "step": 1}, tmp_path / "ckpt")
    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(ta.load(tmp_path / "ckpt")["model"])
    for m in (model, fresh):
        opt = optim.SGD(m.parameters(), lr=0.1)
        (m(x) ** 2).sum().backward()
        opt.step()
    np.testing.assert_array_equal(model.weight.data, fresh.weight.data)


@pytest.mark.parametrize("obj, message", [
    ({"a": [1, 2]}, r"save: the value at \['a'\] is a list"),
    ({"a": {"b.c": "text"}}, r"save: the value at \['a'\]\['b.c'\] is a str"),
    ({"a": np.array([object()])}, r"save: the value at \['a'\] is an array of dtype object"),
    ({"a": np.array(["x"])}, r"save: the value at \['a'\] is an array of dtype <U1"),
    ({"a": None}, r"save: the value at \['a'\] is a NoneType"),
    ({"a": {1: np.zeros(1)}}, r"save: key 1 in \['a'\] is not a string"),
    ({2: 1}, r"save: key 2 in the top level is not a string"),
    ([np.zeros(1)], r"save: expected a dict \(e.g. model.state_dict\(\)\), got list"),
    (nn.Linear(2, 2), r"save: expected a dict \(e.g. model.state_dict\(\)\), got Linear"),
], ids=["list", "str", "object-array", "str-array", "None", "int-key", "int-top-key", "top-list", "module"])
def test_save_rejects_what_it_cannot_represent(obj, message, tmp_path):
    with pytest.raises(TypeError, match=message):
        ta.save(obj, tmp_path / "x.npz")


# ----------------------------------------------------------------------------- bad files


class Exploit:
    """Unpickling this would call the function it names; load must never do that."""

    def __reduce__(self):
        return (pytest.fail, ("a pickle was unpickled",))


def _zip_bytes(files: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _manifest(tree) -> np.ndarray:
    return np.frombuffer(json.dumps({"format": "tinygrad_attn", "version": 1, "tree": tree}).encode(), np.uint8)


def _good_file_bytes(tmp_path) -> bytes:
    ta.save({"w": np.arange(1000, dtype=np.float32), "step": 3}, tmp_path / "good")
    return (tmp_path / "good").read_bytes()


def _object_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, __manifest__=_manifest({"dict": [["a", {"array": "a0"}]]}),
             a0=np.array([Exploit()], dtype=object))
    return buf.getvalue()


BAD_FILES = {
    "empty": lambda good: b"",
    "truncated": lambda good: good[: len(good) // 2],
    "truncated-end": lambda good: good[:-10],
    "corrupt": lambda good: good[:60] + bytes(200) + good[260:],
    "random-bytes": lambda good: np.random.default_rng(0).bytes(500),
    "text": lambda good: b"hello, this is a text file\n" * 10,
    "pickle": lambda good: pickle.dumps({"w": Exploit()}),
    "npy": lambda good: _npy_bytes(),
    "random-zip": lambda good: _zip_bytes({"readme.txt": "hi", "data.bin": b"\x00\x01"}),
    "npz-without-manifest": lambda good: _npz_bytes(w=np.zeros(3)),
    "npz-with-object-array": lambda good: _object_npz(),
    "foreign-manifest": lambda good: _npz_bytes(__manifest__=np.frombuffer(b'{"format": "other"}', np.uint8)),
    "manifest-not-json": lambda good: _npz_bytes(__manifest__=np.frombuffer(b"\xff\x00garbage", np.uint8)),
    "manifest-missing-array": lambda good: _npz_bytes(__manifest__=_manifest({"dict": [["a", {"array": "a7"}]]})),
    "manifest-bad-node": lambda good: _npz_bytes(__manifest__=_manifest({"dict": [["a", {"int": "12"}]]})),
    "manifest-not-a-dict": lambda good: _npz_bytes(__manifest__=_manifest({"array": "__manifest__"})),
    "manifest-version": lambda good: _npz_bytes(__manifest__=np.frombuffer(
        json.dumps({"format": "tinygrad_attn", "version": 99, "tree": {"dict": []}}).encode(), np.uint8)),
}


def _npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(3))
    return buf.getvalue()


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_files_raise_a_value_error_naming_the_file(kind, tmp_path):
    path = tmp_path / f"bad-{kind}.npz"
    path.write_bytes(BAD_FILES[kind](_good_file_bytes(tmp_path)))
    with pytest.raises(ValueError, match=rf"load: '.*bad-{kind}\.npz' is not a valid tinygrad_attn checkpoint"):
        ta.load(path)


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        ta.load(tmp_path / "nope.npz")


def test_the_good_file_used_above_loads(tmp_path):
    path = tmp_path / "again"
    path.write_bytes(_good_file_bytes(tmp_path))
    back = ta.load(path)
    assert back["step"] == 3 and back["w"].shape == (1000,)
