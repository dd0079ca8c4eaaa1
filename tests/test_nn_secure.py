"""Secure executor: data flow (with a test-only clear backend standing in for
the protocol layers), architecture exchange and request checks, errors at the
other side; and end-to-end secure inference and validation against the
plaintext executor."""
import os

import numpy as np
import pytest

from ezprotocols.errors import ProtocolError
from ezprotocols.nn import demo_model_path, demo_validation_set, load_onnx, predict_classes, run_fixed, encode
from ezprotocols.nn import error_bound, run_float
from ezprotocols.nn.plaintext import decode
from ezprotocols.nn.secure import (query_session, recv_architecture, send_architecture,
                                   serve_session, validate_session)
from ezprotocols.testing import run_pair

from _nn_clear_backend import ArithClearNonlinBackend, ClearBackend

DATA = os.path.join(os.path.dirname(__file__), "data")
MODELS = ["torch_cnn_bn.onnx", "torch_mlp.onnx", "torch_resblock.onnx", "torch_misc.onnx", "torch_lenet.onnx",
          "torch_dynamo_resblock.onnx", "torch_dynamo_misc.onnx", "torch_dynamo_cnn_bn.onnx",
          "torch_extra.onnx", "torch_dynamo_extra.onnx"]


def _within_bound(path, plan, x, logits):
    """The documented statement: secure logits within error_bound of the exact ones
    (the secure truncation errs by less than one unit, like the plaintext floor)."""
    exact = run_float(load_onnx(path, encode=False, act_bits=plan.act_bits), x)
    err = np.abs(np.asarray(logits) - exact)
    assert np.all(err <= error_bound(plan, x)), err.max()


def _pair(plan, p1_fn, **serve_kw):
    return run_pair(lambda s: serve_session(s, plan, backend=ClearBackend(s), **serve_kw),
                    lambda s: p1_fn(s), timeout=60)


@pytest.mark.parametrize("name", MODELS)
def test_executor_dataflow_matches_plaintext(name, rng):
    plan = load_onnx(os.path.join(DATA, name))
    x = rng.standard_normal((3,) + plan.input_shape)
    ref = run_fixed(plan, encode(x, plan.frac_bits))
    r0, r1 = _pair(plan, lambda s: query_session(s, x, want_logits=True, batch=2, backend=ClearBackend(s)),
                   allow_logits=True)
    assert np.array_equal(np.rint(r1["logits"] * 2 ** plan.frac_bits).astype(np.int64), ref)
    assert np.array_equal(r1["classes"], predict_classes(plan, decode(ref, plan.frac_bits)))
    assert r0 == {**r0, "mode": "query", "samples": 3} and "logits" not in r0 and "classes" not in r0
    # class only (default)
    r0, r1 = _pair(plan, lambda s: query_session(s, x, backend=ClearBackend(s)))
    assert np.array_equal(r1["classes"], predict_classes(plan, decode(ref, plan.frac_bits)))
    assert "logits" not in r1


def test_validation_dataflow(rng):
    plan = load_onnx(demo_model_path())
    x, y = demo_validation_set(40)
    pred = predict_classes(plan, decode(run_fixed(plan, encode(x, plan.frac_bits)), plan.frac_bits))
    want = int((pred == y).sum())
    r0, r1 = _pair(plan, lambda s: validate_session(s, x, y, confusion=True, batch=16, backend=ClearBackend(s)),
                   allow_confusion=True)
    assert r0["correct"] == r1["correct"] == want
    conf = np.zeros((10, 10), int)
    np.add.at(conf, (y, pred), 1)
    assert r0["confusion"] == r1["confusion"] == conf.tolist()
    assert r1["offline"]["bytes"] >= 0 and r1["online"]["bytes"] > 0
    # confusion matrix only if both agree
    r0, r1 = _pair(plan, lambda s: validate_session(s, x, y, confusion=True, batch=40, backend=ClearBackend(s)))
    assert "confusion" not in r0 and "confusion" not in r1 and r0["correct"] == want


def _skl_string_classifier():
    import skl2onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    r = np.random.default_rng(3)
    X = r.standard_normal((120, 5)).astype(np.float32)
    y = np.array(["low", "mid", "high"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    return load_onnx(skl2onnx.to_onnx(clf, X[:1]).SerializeToString()), X, y


def test_class_labels_in_query_and_validation():
    """A model that declares class labels (skl2onnx, strings here): P1 gets the labels
    of its predictions and validates with its own label values."""
    plan, X, y = _skl_string_classifier()
    assert plan.class_labels == ["high", "low", "mid"]
    pred = predict_classes(plan, decode(run_fixed(plan, encode(X, plan.frac_bits)), plan.frac_bits))
    _, r1 = _pair(plan, lambda s: query_session(s, X[:7], backend=ClearBackend(s)))
    assert np.array_equal(r1["classes"], pred[:7])
    assert r1["labels"].tolist() == [plan.class_labels[i] for i in pred[:7]]
    want = int((np.array(plan.class_labels)[pred] == y).sum())
    r0, r1 = _pair(plan, lambda s: validate_session(s, X, y, batch=50, backend=ClearBackend(s)))
    assert r0["correct"] == r1["correct"] == want and want > 90
    with pytest.raises(ValueError, match="'none' .* is not one of the model's classes"):
        _pair(plan, lambda s: validate_session(s, X[:3], np.array(["low", "none", "mid"]), backend=ClearBackend(s)))
    with pytest.raises(ValueError, match="classes are strings"):
        _pair(plan, lambda s: validate_session(s, X[:3], np.array([0, 1, 2]), backend=ClearBackend(s)))


def test_single_sigmoid_output_is_a_binary_decision(rng):
    """One sigmoid logit z: the class is [z > 0], computed as the argmax of [0, z]
    (zero is a sharing of zero); validation counts two classes."""
    plan = load_onnx(os.path.join(DATA, "torch_dynamo_binary_sigmoid.onnx"))
    x = rng.standard_normal((9, 6)) * 3
    lg = decode(run_fixed(plan, encode(x, plan.frac_bits)), plan.frac_bits)
    want = (lg[:, 0] > 0).astype(np.int64)
    _, r1 = _pair(plan, lambda s: query_session(s, x, backend=ClearBackend(s)))
    assert np.array_equal(r1["classes"], want) and "labels" not in r1
    _, r1 = _pair(plan, lambda s: query_session(s, x, want_logits=True, backend=ClearBackend(s)), allow_logits=True)
    np.testing.assert_allclose(r1["output"], 1 / (1 + np.exp(-lg)))
    r0, _ = _pair(plan, lambda s: validate_session(s, x, want, backend=ClearBackend(s)))
    assert r0["correct"] == 9 and r0["classes_count"] == 2


def test_logits_refused_unless_allowed():
    plan = load_onnx(os.path.join(DATA, "torch_mlp.onnx"))
    with pytest.raises(PermissionError):
        _pair(plan, lambda s: query_session(s, np.zeros((1, 20)), want_logits=True, backend=ClearBackend(s)))


def test_malformed_architecture_gives_protocol_error_at_p1():
    def p0(s):
        s.channel.send("nn.arch", b'{"format": "ezprotocols-plan/1", "ops": [}')

    with pytest.raises(ProtocolError, match="nn.arch: malformed architecture"):
        run_pair(p0, recv_architecture, timeout=30)

    plan = load_onnx(os.path.join(DATA, "torch_lenet.onnx"))
    arch = plan.architecture().replace(b'"op":"relu"', b'"op":"exec"', 1)

    with pytest.raises(ProtocolError, match="unknown op kind"):
        run_pair(lambda s: s.channel.send("nn.arch", arch), recv_architecture, timeout=30)

    with pytest.raises(ProtocolError, match="nn.arch"):
        run_pair(lambda s: s.channel.send("nn.arch", b"\x00" * ((1 << 20) + 1)), recv_architecture, timeout=30)


@pytest.mark.parametrize("garbage", [b"hello", np.arange(6, dtype=np.uint32), np.zeros(6, np.uint64),
                                     np.array([0x455A504E4E310001, 1, 10 ** 9, 1, 0, 10], np.uint64),
                                     np.array([0x455A504E4E310001, 1, 4, 2, 8, 10], np.uint64),
                                     np.array([0x455A504E4E310001, 1, 4, 2, 0, 7], np.uint64),
                                     np.array([0x455A504E4E310001, 1, 4, 2, 1, 10], np.uint64)])
def test_garbage_request_gives_protocol_error_at_p0(garbage):
    plan = load_onnx(os.path.join(DATA, "torch_lenet.onnx"))

    def p1(s):
        ClearBackend(s)
        recv_architecture(s)
        s.channel.send("nn.request", garbage)
        s.channel.recv_array("nn.accept", np.uint64, (2,))

    with pytest.raises(ProtocolError, match="nn.request"):
        run_pair(lambda s: serve_session(s, plan, backend=ClearBackend(s)), p1, timeout=30)


def test_frac_bits_mismatch():
    plan = load_onnx(os.path.join(DATA, "torch_mlp.onnx"), frac_bits=12)
    with pytest.raises(ValueError, match="fractional bits"):
        run_pair(lambda s: send_architecture(s, plan), lambda s: None, timeout=30)


# ---------------------------------------------------------------------- with the real arithmetic layer
@pytest.mark.parametrize("name", MODELS)
def test_arith_layer_linear_ops_match_plaintext(name, rng):
    """Real arithmetic layer for every linear op (P0-weight layers through OT, Beaver
    products, probabilistic local truncation); non-linear ops opened (test only)."""
    plan = load_onnx(os.path.join(DATA, name))
    x = rng.standard_normal((2,) + plan.input_shape)
    r0, r1 = run_pair(lambda s: serve_session(s, plan, allow_logits=True, backend=ArithClearNonlinBackend(s)),
                      lambda s: query_session(s, x, want_logits=True, backend=ArithClearNonlinBackend(s)),
                      timeout=300)
    # local truncation: off by at most one unit per truncation, amplified by later layers
    _within_bound(os.path.join(DATA, name), plan, x, r1["logits"])
    assert r1["offline"]["bytes"] > 0          # P0-weight layers prepared offline


def test_arith_layer_validation_counts():
    plan = load_onnx(demo_model_path())
    x, y = demo_validation_set(24)
    pred = predict_classes(plan, decode(run_fixed(plan, encode(x, plan.frac_bits)), plan.frac_bits))
    r0, r1 = run_pair(lambda s: serve_session(s, plan, allow_confusion=True, backend=ArithClearNonlinBackend(s)),
                      lambda s: validate_session(s, x, y, confusion=True, batch=10,
                                                 backend=ArithClearNonlinBackend(s)), timeout=300)
    assert r0["correct"] == r1["correct"] == int((pred == y).sum())
    conf = np.zeros((10, 10), int)
    np.add.at(conf, (y, pred), 1)
    assert r1["confusion"] == conf.tolist()


# ---------------------------------------------------------------------- with the real protocol layers
@pytest.mark.parametrize("name", MODELS)
def test_secure_query_matches_plaintext(name, rng):
    plan = load_onnx(os.path.join(DATA, name))
    x = rng.standard_normal((3,) + plan.input_shape)
    r0, r1 = run_pair(lambda s: serve_session(s, plan, allow_logits=True),
                      lambda s: query_session(s, x, want_logits=True, batch=2), timeout=300)
    # local truncation: off by one unit per truncation, amplified by the later layers
    _within_bound(os.path.join(DATA, name), plan, x, r1["logits"])
    assert set(r0) >= {"mode", "samples"} and "logits" not in r0 and "classes" not in r0


def test_secure_with_an_activation_bound(rng):
    plan = load_onnx(os.path.join(DATA, "torch_cnn_bn.onnx"), act_bits=36)
    x = rng.standard_normal((3,) + plan.input_shape)
    _, r1 = run_pair(lambda s: serve_session(s, plan, allow_logits=True),
                     lambda s: query_session(s, x, want_logits=True), timeout=300)
    _within_bound(os.path.join(DATA, "torch_cnn_bn.onnx"), plan, x, r1["logits"])


def test_secure_query_reveals_the_class_over_tcp(rng):
    plan = load_onnx(demo_model_path())
    x, _ = demo_validation_set(5)
    want = predict_classes(plan, decode(run_fixed(plan, encode(x, plan.frac_bits)), plan.frac_bits))
    r0, r1 = run_pair(lambda s: serve_session(s, plan), lambda s: query_session(s, x), transport="tcp",
                      timeout=300)
    assert np.array_equal(r1["classes"], want) and "logits" not in r1
    assert "classes" not in r0 and r0["samples"] == 5


def test_secure_edge_inputs():
    """Zeros, negative and large-magnitude inputs, a single sample.  (Ties of the
    argmax are the hybrid layer's tests: truncation noise makes model-level ties random.)"""
    plan = load_onnx(os.path.join(DATA, "torch_mlp.onnx"))
    x = np.stack([np.zeros(20), np.full(20, -1.0), np.full(20, 50.0)])
    _, r1 = run_pair(lambda s: serve_session(s, plan, allow_logits=True),
                     lambda s: query_session(s, x, want_logits=True), timeout=300)
    _within_bound(os.path.join(DATA, "torch_mlp.onnx"), plan, x, r1["logits"])
    _, r1 = run_pair(lambda s: serve_session(s, plan), lambda s: query_session(s, x[:1]), timeout=300)
    assert r1["classes"].shape == (1,)



def test_secure_validation_equals_plaintext_on_demo_set():
    plan = load_onnx(demo_model_path())
    x, y = demo_validation_set(64)
    pred = predict_classes(plan, decode(run_fixed(plan, encode(x, plan.frac_bits)), plan.frac_bits))
    r0, r1 = run_pair(lambda s: serve_session(s, plan), lambda s: validate_session(s, x, y, batch=64), timeout=600)
    assert r0["correct"] == r1["correct"] == int((pred == y).sum())


def test_secure_class_labels_and_binary_sigmoid(rng):
    plan, X, y = _skl_string_classifier()
    pred = predict_classes(plan, decode(run_fixed(plan, encode(X, plan.frac_bits)), plan.frac_bits))
    r0, r1 = run_pair(lambda s: serve_session(s, plan), lambda s: validate_session(s, X[:40], y[:40], batch=20),
                      timeout=300)
    assert abs(r1["correct"] - int((np.array(plan.class_labels)[pred[:40]] == y[:40]).sum())) <= 1
    bplan = load_onnx(os.path.join(DATA, "torch_binary_sigmoid.onnx"))
    x = rng.standard_normal((6, 6)) * 3
    lg = decode(run_fixed(bplan, encode(x, bplan.frac_bits)), bplan.frac_bits)
    _, r1 = run_pair(lambda s: serve_session(s, bplan), lambda s: query_session(s, x), timeout=300)
    clear = np.abs(lg[:, 0]) > 1e-3
    assert np.array_equal(r1["classes"][clear], (lg[clear, 0] > 0).astype(np.int64))


# ---------------------------------------------------------------------- fused garbled stages (compare="gc")
def test_gc_fused_query_is_exact_and_constant_round():
    """With the garbled comparison engine every non-linear stage of LeNet (the
    truncation before it, max pool and ReLU; the final argmax and its opening to P1)
    is one garbled circuit: exact floor truncation, so the classes equal the plaintext
    executor's, and each stage costs two message runs."""
    plan = load_onnx(demo_model_path())
    x, y = demo_validation_set(6)
    want = predict_classes(plan, decode(run_fixed(plan, encode(x, plan.frac_bits)), plan.frac_bits))
    r0, r1 = run_pair(lambda s: serve_session(s, plan), lambda s: query_session(s, x), compare="gc",
                      ot="ferret", timeout=300)
    assert np.array_equal(r1["classes"], want) and "classes" not in r0
    _, r1 = run_pair(lambda s: serve_session(s, plan), lambda s: query_session(s, x[:1]), compare="gc",
                     ot="ferret", timeout=300)
    # input 1, two convs and two matmuls 1 each (the masked input), four garbled stages 2 each
    assert r1["online"]["rounds"] <= 14
    assert np.array_equal(r1["classes"], want[:1])


@pytest.mark.parametrize("name", MODELS)
def test_gc_fused_models_within_bound(name, rng):
    plan = load_onnx(os.path.join(DATA, name))
    x = rng.standard_normal((2,) + plan.input_shape)
    _, r1 = run_pair(lambda s: serve_session(s, plan, allow_logits=True),
                     lambda s: query_session(s, x, want_logits=True), compare="gc", timeout=300)
    _within_bound(os.path.join(DATA, name), plan, x, r1["logits"])


def test_gc_fused_validation_and_activation_bound():
    plan = load_onnx(demo_model_path(), act_bits=25)
    x, y = demo_validation_set(24)
    pred = predict_classes(plan, decode(run_fixed(plan, encode(x, plan.frac_bits)), plan.frac_bits))
    r0, r1 = run_pair(lambda s: serve_session(s, plan), lambda s: validate_session(s, x, y, batch=12),
                      compare="gc", timeout=300)
    assert r0["correct"] == r1["correct"] == int((pred == y).sum())
    _, r1 = run_pair(lambda s: serve_session(s, plan), lambda s: query_session(s, x), compare="gc", timeout=300)
    assert np.array_equal(r1["classes"], pred)


def test_stage_choice_is_public_and_follows_round_bytes():
    """With the OT engine a stage is garbled only where its bytes are at most round_bytes
    per message run saved (LeNet: the last ReLU and the argmax at batch 1, the argmax
    alone at 64); with the garbled engine (infinite) every stage; 0 turns them off."""
    import math
    import types
    from ezprotocols.nn.secure import ROUND_BYTES, _Exec
    plan = load_onnx(demo_model_path())
    kinds = [op.kind for op in plan.ops]
    be = types.SimpleNamespace(round_bytes=ROUND_BYTES, act_bits=64)
    ex = _Exec(types.SimpleNamespace(role=0), plan, be, pending_out=True)
    fp1, fp64 = ex._fusion(1), ex._fusion(64)
    last_relu = max(i for i, k in enumerate(kinds) if k == "relu")
    assert fp1["stage"] == {last_relu} and fp1["defer"] == {last_relu - 1, len(kinds) - 1} and fp1["out"]
    assert fp64["stage"] == set() and fp64["out"]
    be.round_bytes = math.inf
    fp = _Exec(types.SimpleNamespace(role=1), plan, be, pending_out=True)._fusion(64)
    pools = {i for i, k in enumerate(kinds) if k == "maxpool"}
    assert fp["stage"] == pools | {last_relu} and fp["pool_relu"] == pools and len(fp["relu_pass"]) == 2
    assert fp["defer"] == {i for i, k in enumerate(kinds) if k in ("conv", "matmul")} and fp["out"]
    be.round_bytes = 0
    fp = _Exec(types.SimpleNamespace(role=0), plan, be, pending_out=True)._fusion(1)
    assert not fp["stage"] and not fp["out"] and not fp["defer"]


def test_conv_pack_follows_the_plan():
    """The owner's HE convolution packing mode (``serve --conv-pack``) is set on the session of
    whoever runs the plan, so both parties encode alike; without one the library default holds."""
    import types
    from ezprotocols.arith import he
    from ezprotocols.nn.secure import ROUND_BYTES, _Exec
    plan = load_onnx(demo_model_path())
    be = types.SimpleNamespace(round_bytes=ROUND_BYTES, act_bits=64)
    sess = types.SimpleNamespace(role=1)
    _Exec(sess, plan, be)
    assert not hasattr(sess, "he_conv_pack") and he.session_conv_pack(sess) == he.CONV_PACK == "auto"
    plan.conv_pack = "off"
    _Exec(sess, plan, be)
    assert sess.he_conv_pack == "off" and he.session_conv_pack(sess) == "off"


def test_galois_keys_first_where_they_pay():
    """The data owner's Galois keys go first when the packed layers of the plan save more than
    the keys cost (LeNet at batch 1: no single layer pays for them, all together do); both
    parties decide alike from public shapes; a tiny MLP keeps its layers unpacked."""
    from ezprotocols.arith import he
    from ezprotocols.nn.secure import Backend

    def party(model, batch):
        plan = load_onnx(model)

        def f(s):
            b = Backend(s)
            with s.phase("p"):
                b.prepare(plan, batch)
            return he._have_galois(s, 1), s.stats()["p"]["bytes"]
        return f
    (k0, b0), (k1, _) = run_pair(party(demo_model_path(), 1), party(demo_model_path(), 1))
    assert k0 and k1 and b0 > he._gk_bytes()
    (k0, _), (k1, _) = run_pair(party(os.path.join(DATA, "torch_mlp.onnx"), 1),
                                party(os.path.join(DATA, "torch_mlp.onnx"), 1))
    assert not k0 and not k1


def test_opened_argmax_uses_the_whole_ring(rng):
    """A logit beyond the published act_bits must not turn the opened class into the
    argmax of wrapped values (review GS-1): the opened stage reads all 64 bits."""
    from ezprotocols.nn.secure import Backend
    x = rng.integers(-(1 << 40), 1 << 40, size=(30, 10), dtype=np.int64)
    x[0, 3] = 1 << 45                                  # far beyond act_bits = 20
    r = rng.integers(0, 2**64, size=x.shape, dtype=np.uint64)
    sh = (x.view(np.uint64) - r, r)

    def party(s):
        be = Backend(s)
        be.act_bits = 20
        return be.stage(sh[s.role], "argmax", reveal=True)

    r0, r1 = run_pair(party, party, compare="gc")
    assert r0 is None and np.array_equal(r1, x.argmax(axis=1))
