"""Plan and architecture exchange: P1's strict parser accepts what P0 sends and
refuses anything malformed or out of bounds with a ProtocolError naming the step."""
import json
import os

import numpy as np
import pytest

from ezprotocols.errors import ProtocolError
from ezprotocols.nn import LIMITS, load_onnx, parse_architecture, run_plaintext
from ezprotocols.nn.plan import Op, Plan

DATA = os.path.join(os.path.dirname(__file__), "data")
MODELS = ["torch_cnn_bn.onnx", "torch_mlp.onnx", "torch_resblock.onnx", "torch_misc.onnx", "torch_lenet.onnx",
          "torch_dynamo_resblock.onnx", "torch_dynamo_misc.onnx", "torch_dynamo_cnn_bn.onnx",
          "torch_extra.onnx", "torch_dynamo_extra.onnx"]


@pytest.mark.parametrize("name", MODELS)
def test_architecture_roundtrip_has_no_weights(name):
    plan = load_onnx(os.path.join(DATA, name))
    arch = plan.architecture(allow_logits=True)
    p1, allow = parse_architecture(arch)
    assert allow is True and p1.consts is None
    assert p1.input_shape == plan.input_shape and p1.const_shapes == [tuple(s) for s in plan.const_shapes]
    assert [(o.kind, o.inputs, o.consts, o.shape) for o in p1.ops] == \
        [(o.kind, o.inputs, o.consts, o.shape) for o in plan.ops]
    assert (p1.post, p1.post_axis, p1.frac_bits) == (plan.post, plan.post_axis, plan.frac_bits)
    # no weight value travels: the architecture is small and holds no float
    d = json.loads(arch)
    assert not any(isinstance(v, float) for v in _leaves(d))
    assert len(arch) < 4096


def _leaves(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _leaves(v)
    elif isinstance(x, list):
        for v in x:
            yield from _leaves(v)
    else:
        yield x


def _arch(name="torch_lenet.onnx"):
    return json.loads(load_onnx(os.path.join(DATA, name)).architecture())


def _bad(d):
    data = d if isinstance(d, bytes) else json.dumps(d).encode()
    with pytest.raises(ProtocolError, match="nn.arch: malformed architecture"):
        parse_architecture(data, "nn.arch")


def test_malformed_architectures_are_refused():
    _bad(b"")
    _bad(b"\xff\xfe")
    _bad(b"[" * 100000)                                    # deep nesting
    _bad(b'{"format": 1, "format": 2}')                   # duplicate keys
    _bad(b"x" * (LIMITS["max_bytes"] + 1))
    d = _arch(); d["format"] = "other/1"; _bad(d)
    d = _arch(); d["extra"] = 1; _bad(d)
    d = _arch(); d["frac_bits"] = 99; _bad(d)
    d = _arch(); d["frac_bits"] = 16.0; _bad(d)
    d = _arch(); d["act_bits"] = 65; _bad(d)
    d = _arch(); d["act_bits"] = 12; _bad(d)                # below frac_bits + 2
    d = _arch(); del d["act_bits"]; _bad(d)
    d = _arch(); d["input"] = [1, 1 << 40]; _bad(d)
    d = _arch(); d["input"] = [0, 28, 28]; _bad(d)
    d = _arch(); d["input"] = [2] * 7; _bad(d)
    d = _arch(); d["input"] = [4096, 4096, 4096]; _bad(d)   # too many elements
    d = _arch(); d["ops"][0]["op"] = "eval"; _bad(d)
    d = _arch(); d["ops"][0]["op"] = ["conv"]; _bad(d)
    d = _arch(); d["ops"][0]["attrs"]["__class__"] = 1; _bad(d)
    d = _arch(); d["ops"][0]["attrs"]["strides"] = [1]; _bad(d)
    d = _arch(); d["ops"][0]["attrs"]["strides"] = [0, 1]; _bad(d)
    d = _arch(); d["ops"][0]["attrs"]["group"] = True; _bad(d)
    d = _arch(); d["ops"][0]["attrs"]["group"] = 7; _bad(d)
    d = _arch(); d["ops"][0]["in"] = [5]; _bad(d)          # used before defined
    d = _arch(); d["ops"][0]["c"] = [0, 0]; _bad(d)         # constant used twice
    d = _arch(); d["ops"][0]["c"] = [99]; _bad(d)
    d = _arch(); d["ops"][0]["shape"] = [6, 24, 25]; _bad(d)  # shape disagrees with the attributes
    d = _arch(); d["consts"][0] = [6, 1, 5, 4]; _bad(d)
    d = _arch(); d["consts"].append([3]); _bad(d)           # unused constant
    d = _arch(); d["ops"] = d["ops"] * 300; _bad(d)         # too many ops
    d = _arch(); d["post"]["kind"] = "tanh"; _bad(d)
    d = _arch(); d["post"] = {"kind": "sigmoid", "axis": 0, "keepdims": False}; _bad(d)
    d = _arch(); d["post"] = {"kind": "argmax", "axis": 5, "keepdims": False}; _bad(d)
    d = _arch(); d["allow_logits"] = "yes"; _bad(d)
    d = _arch(); d["ops"][0]["shape"] = [6, 24, 24.0]; _bad(d)
    _bad(b'{"format": NaN}')


def test_random_mutations_never_crash(rng):
    """Byte-level mutations of a valid architecture: parsed or refused, never another error."""
    arch = bytearray(load_onnx(os.path.join(DATA, "torch_misc.onnx")).architecture())
    for _ in range(300):
        b = bytearray(arch)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(len(b)))] = int(rng.integers(32, 127))
        try:
            parse_architecture(bytes(b), "nn.arch")
        except ProtocolError:
            pass


def test_act_bits_bound(rng):
    plan = load_onnx(os.path.join(DATA, "torch_lenet.onnx"), act_bits=40)
    p1, _ = parse_architecture(plan.architecture())
    assert p1.act_bits == 40
    x = rng.standard_normal((2, 1, 28, 28))
    run_plaintext(plan, x)                                  # fits
    with pytest.raises(OverflowError, match="act_bits=40"):
        run_plaintext(plan, x * 1e8)
    with pytest.raises(ValueError):
        load_onnx(os.path.join(DATA, "torch_lenet.onnx"), act_bits=10)


def test_plan_check_and_empty_plan():
    p = Plan(input_shape=(3,), ops=[], const_shapes=[], consts=[], post="softmax", post_axis=1)
    p.check()
    p.encode()
    x = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(run_plaintext(p, x), np.exp(x) / np.exp(x).sum(), atol=1e-4)
    bad = Plan(input_shape=(3,), ops=[Op("relu", [0], [], {}, (4,))], const_shapes=[], consts=[])
    with pytest.raises(ValueError, match="declared shape"):
        bad.check()


def _labelled(labels, post="softmax", n=3):
    return Plan(input_shape=(n,), ops=[], const_shapes=[], consts=[], post=post, post_axis=1, class_labels=labels)


@pytest.mark.parametrize("labels,post,n", [([3, 7, 11], "softmax", 3), (["cat", "dog", "\u00e9l\u00e8ve"], "argmax", 3),
                                          ([0, 1], "sigmoid", 1), (["no", "yes"], "sigmoid", 2)])
def test_class_labels_travel_with_the_architecture(labels, post, n):
    plan = _labelled(labels, post, n)
    plan.check()
    p1, _ = parse_architecture(plan.architecture())
    assert p1.class_labels == labels and p1.n_classes == len(labels)
    assert p1.binary == (post == "sigmoid" and n == 1)
    assert "labels" not in json.loads(_labelled(None).architecture())


def test_malformed_class_labels_are_refused():
    good = json.loads(_labelled([1, 2, 3]).architecture())
    for labels in ([1, 2], [1, 2, 3, 4], [1, "a", 2], [1.5, 2, 3], [1, 1, 2], ["a" * 300, "b", "c"],
                   [1 << 64, 2, 3], "abc", {"a": 1}, [[1], [2], [3]], [True, False, 1], None):
        d = dict(good)
        d["labels"] = labels
        _bad(d)


def test_conv_pack_travels_with_the_architecture():
    """The owner's HE convolution packing mode is public and adopted by the client; other values
    are refused."""
    plan = load_onnx(os.path.join(DATA, "torch_lenet.onnx"))
    assert parse_architecture(plan.architecture())[0].conv_pack is None
    for mode in ("off", "auto", "bytes"):
        plan.conv_pack = mode
        assert parse_architecture(plan.architecture())[0].conv_pack == mode
    for bad in ("on", "", 1, True, None, ["auto"]):
        d = _arch()
        d["conv_pack"] = bad
        _bad(d)


def test_stage_bytes_travels_with_the_architecture():
    """The owner's garbled-stage budget is public and adopted by the client; bad values
    are refused."""
    plan = load_onnx(os.path.join(DATA, "torch_lenet.onnx"))
    assert parse_architecture(plan.architecture())[0].stage_bytes is None
    plan.stage_bytes = 0
    assert parse_architecture(plan.architecture())[0].stage_bytes == 0
    plan.stage_bytes = 1 << 20
    assert parse_architecture(plan.architecture())[0].stage_bytes == 1 << 20
    for bad in (-1, 1.5, "1", True, (1 << 40) + 1):
        d = _arch()
        d["stage_bytes"] = bad
        _bad(d)
