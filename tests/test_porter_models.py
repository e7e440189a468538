"""Whole models through the porter: graphs with branches, merges, shared layers,
nested models, several inputs and outputs, stubs, hostile names, MobileNetV2."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import torch

from sandbox.porter import Port, port, prove
from sandbox.porter.proof import load_module
from tests.test_porter_layers import proved, randomize

L = keras.layers


def small_cnn() -> keras.Model:
    image = keras.Input((12, 12, 3), name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", name="stem")(image)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    skip = x
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(x)
    x = L.Conv2D(8, 3, padding="same", name="conv_b")(x)
    x = L.Add(name="residual")([x, skip])
    left = L.Conv2D(4, 1, name="left")(x)
    right = L.MaxPooling2D(3, strides=1, padding="same", name="right_pool")(x)
    x = L.Concatenate(name="branches")([left, right])
    x = L.Flatten(name="flatten")(x)
    logits = L.Dense(5, name="logits")(x)
    return randomize(keras.Model(image, logits, name="small_cnn"))


def test_small_cnn_with_a_skip_and_a_branch_is_proved() -> None:
    model = small_cnn()
    p = proved(model)
    assert [lp.attribute for lp in p.layers][:3] == [None, "stem", "stem_bn"]
    assert {"kernel-layout", "bn-momentum-epsilon", "same-padding-stride",
            "flatten-channels-last"} <= {t.key for t in p.traps}
    assert "nn.MaxPool2d(3, stride=1, padding=1)" in p.source  # "same" at stride 1 is symmetric
    assert "torch.fx" not in p.source and "keras" not in p.source.split("# Keras model")[0]


def test_the_module_takes_nchw_when_asked() -> None:
    model = small_cnn()
    p = proved(model, layout="nchw")
    module = load_module(p)
    x = np.random.default_rng(1).standard_normal((2, 12, 12, 3)).astype("float32")
    with torch.no_grad():
        got = module(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(x)), atol=1e-4, rtol=1e-4)
    assert "image.permute" not in p.source  # no permute at the boundary


def test_a_shared_layer_is_one_attribute_called_twice() -> None:
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    shared = L.Dense(4, activation="tanh", name="shared")
    out = L.Subtract(name="diff")([shared(a), shared(b)])
    model = randomize(keras.Model([a, b], out, name="siamese"))
    p = proved(model)
    assert p.source.count("self.shared = ") == 1
    assert p.source.count("self.shared(") == 2
    assert [k for k in p.state_dict if k.startswith("shared.")] == ["shared.weight", "shared.bias"]


def test_a_nested_sequential_becomes_a_submodule() -> None:
    encoder = keras.Sequential([keras.Input((8, 8, 2)),
                                L.Conv2D(4, 3, strides=2, padding="same", name="conv"),
                                L.BatchNormalization(name="bn"), L.GlobalAveragePooling2D(name="gap")],
                               name="encoder")
    x = keras.Input((8, 8, 2), name="x")
    y = keras.Input((8, 8, 2), name="y")
    joined = L.Concatenate(name="joined")([encoder(x), encoder(y)])
    model = randomize(keras.Model([x, y], L.Dense(3, name="head")(joined), name="outer"))
    p = proved(model)
    assert "class Encoder(nn.Module):" in p.source
    assert "self.encoder = Encoder()" in p.source
    assert "encoder.conv.weight" in p.state_dict
    inner = [lp for lp in p.layers if lp.path[:1] == ("encoder",) and len(lp.path) == 2]
    assert [lp.attribute for lp in inner if lp.attribute] == [
        "encoder.conv", "encoder.bn", "encoder.gap"]


def test_several_inputs_and_outputs() -> None:
    seq = keras.Input((5, 3), name="sequence")
    meta = keras.Input((4,), name="meta")
    h = L.GRU(6, name="gru")(seq)
    both = L.Concatenate(name="both")([h, L.Dense(6, name="meta_dense")(meta)])
    score = L.Dense(1, activation="sigmoid", name="score")(both)
    kind = L.Dense(3, activation="softmax", name="kind")(both)
    model = randomize(keras.Model([seq, meta], [score, kind], name="two_heads"))
    p = proved(model)
    assert "def forward(self, sequence: torch.Tensor, meta: torch.Tensor)" in p.source
    assert "return score, kind" in p.source


def test_a_sequential_model_ports() -> None:
    model = randomize(keras.Sequential([keras.Input((10, 4)), L.Conv1D(6, 3, padding="causal"),
                                        L.LSTM(5, return_sequences=True), L.GRU(4),
                                        L.Dense(2)], name="seq2one"))
    proved(model)


def test_given_inputs_are_proved_too() -> None:
    model = small_cnn()
    p = port(model)
    x = np.full((3, 12, 12, 3), 0.5, np.float32)
    proof = prove(model, p, inputs=[x])
    assert proof.status == "proved" and proof.batches == 2


def test_a_wrong_weight_fails_the_proof_at_its_layer() -> None:
    model = small_cnn()
    p = port(model)
    p.state_dict["conv_b.weight"] = p.state_dict["conv_b.weight"] * 1.01
    proof = prove(model, p)
    assert proof.status == "failed"
    status = {r.name: r.status for r in proof.rows}
    assert status["conv_a"] == "pass" and status["conv_b"] == "fail"


class Doubler(keras.layers.Layer):
    def call(self, x):  # type: ignore[no-untyped-def]
        return x * 2.0


@pytest.mark.parametrize("odd", [lambda: L.Lambda(lambda t: t * 2.0, name="twice"),
                                 lambda: Doubler(name="twice")])
def test_an_unsupported_layer_becomes_a_stub_and_the_proof_is_partial(odd) -> None:  # type: ignore[no-untyped-def]
    x = keras.Input((4,), name="x")
    h = L.Dense(3, name="before")(x)
    model = randomize(keras.Model(x, L.Dense(2, name="after")(odd()(h))))
    p = port(model)
    assert [lp.name for lp in p.unsupported] == ["twice"]
    assert "self.twice = KerasStub('twice'," in p.source
    proof = prove(model, p)
    assert proof.status == "partial"
    assert {r.name: r.status for r in proof.rows} == {
        "before": "pass", "twice": "stub", "after": "not run"}
    with pytest.raises(NotImplementedError, match="twice"):
        load_module(p)(torch.zeros(1, 4))


HOSTILE = "x\n import os; os.system('rm -rf /')"


def calls_of(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {alias.name for alias in node.names}
    return names


def test_a_hostile_layer_name_cannot_inject_code() -> None:
    # Keras refuses "/" in a name it is given, so the names are forced afterwards,
    # as a crafted file could.
    x = keras.Input((4,), name="x")
    h = L.Dense(3, name="d")(x)
    odd = L.Lambda(lambda t: t, name="odd")(h)
    model = randomize(keras.Model(x, L.Dense(2, name="ok")(odd), name="m"))
    for i, layer in enumerate([*model.layers, model]):
        layer.name = HOSTILE + ["", "'", '"""', "\\", "\u2028"][i % 5]
    p = port(model)
    compile(p.source, "model.py", "exec")
    calls = calls_of(p.source)
    assert not calls & {"system", "os", "exec", "__import__"}
    for line in p.source.splitlines():
        assert "rm -rf" not in line or line.lstrip().startswith("#") or "KerasStub(" in line
    assert p.class_name.isidentifier()
    module = load_module(p)  # builds and loads; Keras itself can no longer run such names
    assert len(list(module.children())) == 3


def test_names_that_clash_with_python_or_nn_module_stay_distinct() -> None:
    x = keras.Input((4,), name="class")
    h = L.Dense(3, name="forward")(x)
    h = L.Dense(3, name="2nd")(h)
    h = L.Dense(3, name="self")(h)
    model = randomize(keras.Model(x, L.Dense(2, name="eval")(h), name="import"))
    p = proved(model)
    assert {lp.attribute for lp in p.layers} == {None, "forward_", "layer_2nd", "self", "eval_"}


def test_saved_files_load_with_the_module_level_load(tmp_path: Path) -> None:
    model = small_cnn()
    p = port(model)
    p.save(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile((tmp_path / "model.py").read_text(), "model.py", "exec"), namespace)
    module = namespace["load"](str(tmp_path / "weights.safetensors"))  # type: ignore[operator]
    assert not module.training
    x = np.random.default_rng(2).standard_normal((1, 12, 12, 3)).astype("float32")
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model(x)), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_mobilenet_v2_is_proved() -> None:
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    randomize(model)
    start = time.monotonic()
    p: Port = port(model)
    proof = prove(model, p)
    took = time.monotonic() - start
    worst = max(r.max_abs_err for r in proof.rows)
    print(f"MobileNetV2: {proof.status}, {len(proof.rows)} layers, worst abs err {worst:.2e}, "
          f"{took:.1f} s")
    assert proof.status == "proved", [r for r in proof.rows if r.status != "pass"][:3]


def test_keras_ops_calls_are_written_inline() -> None:
    x = keras.Input((6, 6, 2), name="x")
    h = L.Conv2D(4, 3, padding="same", name="conv")(x)
    h = keras.ops.relu6(h + 3.0) * (1.0 / 6.0)
    h = h - L.Conv2D(4, 1, name="other")(x)
    model = randomize(keras.Model(x, L.Flatten(name="flat")(-h)))
    p = proved(model)
    assert p.unsupported == []
    assert "h + 3.0" in p.source and "F.relu6(" in p.source  # the input is x: h runs
    assert [lp.inline for lp in p.layers].count(True) == 5


def test_a_keras_ops_call_it_cannot_write_is_a_stub_not_a_layer_of_the_same_name() -> None:
    x = keras.Input((4,), name="x")
    h = L.Dense(4, name="dense")(x)
    model = randomize(keras.Model(x, L.Dense(2, name="out")(keras.ops.cumsum(h, axis=-1))))
    p = port(model)
    assert [lp.class_name for lp in p.unsupported] == ["Cumsum"]
    assert prove(model, p).status == "partial"


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_a_model_loaded_from_a_file_ports(tmp_path: Path, suffix: str) -> None:
    import warnings

    model = small_cnn()
    path = tmp_path / f"model{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .h5 is "legacy" to Keras 3
        model.save(path)
        loaded = keras.models.load_model(path)
    p = proved(loaded)
    np.testing.assert_array_equal(p.state_dict["conv_a.weight"], port(model).state_dict["conv_a.weight"])


class Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__(name="subclassed")
        self.dense = L.Dense(2)

    def call(self, x):  # type: ignore[no-untyped-def]
        return self.dense(x)


def test_a_subclassed_model_is_refused_with_a_reason_and_as_a_layer_is_a_stub() -> None:
    from sandbox.porter.graph import NotPortable

    inner = Subclassed()
    with pytest.raises(NotPortable, match="subclassed"):
        port(inner)
    x = keras.Input((4,), name="x")
    model = randomize(keras.Model(x, inner(L.Dense(4, name="first")(x))))
    p = port(model)
    assert [lp.name for lp in p.unsupported] == ["subclassed"]
    assert prove(model, p).status == "partial"


def test_inputs_say_which_argument_they_became() -> None:
    p = port(small_cnn())
    assert (p.layers[0].name, p.layers[0].attribute, p.layers[0].argument) == ("image", None, "image")


def test_a_port_whose_module_cannot_be_built_fails_its_proof() -> None:
    model = small_cnn()
    p = port(model)
    del p.state_dict["stem.weight"]
    proof = prove(model, p)
    assert proof.status == "failed" and "stem.weight" in (proof.error or "")


def test_generated_source_passes_ruff() -> None:
    import subprocess
    import sys

    ruff = Path(sys.executable).with_name("ruff")
    for model in (small_cnn(), keras.Sequential([keras.Input((5, 3)), L.LSTM(4)])):
        done = subprocess.run(
            [str(ruff), "check", "--no-cache", "--isolated", "--select", "E,F,W,B,UP,SIM",
             "--line-length", "120", "--stdin-filename", "model.py", "-"],
            input=port(model).source, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("build", [
    lambda: keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3)),
    lambda: keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3)),
    lambda: keras.applications.ConvNeXtTiny(weights=None, input_shape=(64, 64, 3))],
    ids=["MobileNetV3Small", "EfficientNetB0", "ConvNeXtTiny"])
def test_applications_with_ops_and_preprocessing_are_proved(build) -> None:  # type: ignore[no-untyped-def]
    model = randomize(build())
    p = port(model)
    assert p.unsupported == []
    assert prove(model, p).status == "proved"


def test_a_nested_functional_model_with_two_inputs_and_two_outputs() -> None:
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    joined = L.Concatenate(name="cat")([a, b])
    inner = keras.Model([a, b], [L.Dense(3, name="left")(joined), L.Dense(2, name="right")(joined)],
                        name="add")  # a name that is also a helper class's
    x, y = keras.Input((6,), name="x"), keras.Input((6,), name="y")
    left, right = inner([x, y])
    model = randomize(keras.Model([x, y], L.Concatenate(name="out")([left, right]), name="outer"))
    p = proved(model)
    assert "class Add1(nn.Module):" in p.source and "self.add = Add1()" in p.source
    assert "left, right = self.add(x, y)" in p.source


def test_the_generated_file_imports_only_torch_and_safetensors() -> None:
    model = small_cnn()
    tree = ast.parse(port(model).source)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported == {"__future__", "torch", "safetensors"}
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
                and node.col_offset > 0]  # every import at the top


def test_every_helper_block_passes_ruff(tmp_path: Path) -> None:
    import subprocess
    import sys

    from sandbox.porter import helpers

    blocks = [helpers.BLOCKS[name] for name in helpers.needed(set(helpers.BLOCKS))]
    path = tmp_path / "blocks.py"
    path.write_text("from __future__ import annotations\n\nimport torch\nimport torch.nn.functional as F\n"
                    "from torch import nn\n" + "\n".join(blocks))
    ruff = subprocess.run(
        [str(Path(sys.executable).with_name("ruff")), "check", "--no-cache", "--isolated", "--select",
         "E,F,W,B,UP,SIM", "--line-length", "100", str(path)], capture_output=True, text=True, check=False)
    assert ruff.returncode == 0, ruff.stdout
