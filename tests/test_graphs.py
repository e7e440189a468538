"""Graph drawings, in-process: snippets are exec'd into a dict as the run does."""

from __future__ import annotations

import linecache
import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sandbox import graphs
from sandbox.graphs import keras_graph, tf_graph, torch_graph, tracking
from sandbox.graphs.diagram import FILLS, Diagram, Node, quote, to_dot
from sandbox.graphs.render import RenderError, clean_svg, render

_counter = iter(range(1_000_000))


def run(source: str) -> dict[str, Any]:
    """Exec a snippet the way the sandbox does, with its source visible to AutoGraph."""
    source = textwrap.dedent(source)
    filename = f"<snippet-{next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "__snippet__"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace


@pytest.fixture(autouse=True)
def tracking_on() -> Iterator[None]:
    graphs.install_tracking()
    tracking.forget()  # each sandbox run is a fresh process; here tests share one
    yield
    tracking.forget()


def labels(diagram: Diagram, kind: str | None = None) -> list[str]:
    return [n.label for n in diagram.nodes.values() if kind is None or n.kind == kind]


TORCH_STEP = """
import torch
from torch import nn

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

torch.manual_seed(0)
model = MLP()
loss_fn = nn.MSELoss()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(16, 4)
y = torch.randn(16, 1)
pred = model(x)
loss = loss_fn(pred, y)
"""

KERAS_STEP = """
import tensorflow as tf
import keras

model = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"),
     keras.layers.Dense(1, name="out")],
    name="mlp",
)
opt = keras.optimizers.SGD(0.1)
x = tf.random.normal((16, 4))
y = tf.random.normal((16, 1))

@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss

loss = train_step(x, y)
"""


def test_torch_training_step_draws_ops_and_named_parameters() -> None:
    ns = run(TORCH_STEP + "loss.backward()\nopt.step()\n")
    drawn = graphs.draw(ns, "pytorch", None)
    assert [g.kind for g in drawn] == ["autograd", "structure"]
    autograd = drawn[0]
    assert autograd.title == "Autograd graph of loss" and not autograd.truncated
    for text in (
        "Addmm",
        "Relu",
        "MseLoss",
        "model.fc1.weight",
        "model.fc1.bias",
        "model.fc2.weight",
    ):
        assert text in autograd.svg
    assert "freed them" in autograd.svg  # backward() dropped the saved inputs, and says so
    assert drawn[1].title == "Structure of model (MLP)"  # the model, not the loss module


def test_torch_inputs_without_grad_are_drawn_apart_from_parameters() -> None:
    ns = run(TORCH_STEP)
    diagram = torch_graph.autograd_diagram(ns["loss"], "loss", ns)
    assert sorted(labels(diagram, "input")) == ["x\n16×4", "y\n16×1"]
    assert "model.fc1.weight\n8×4" in labels(diagram, "param")
    assert labels(diagram, "output") == ["loss\nscalar"]
    assert "Addmm\n16×8" in labels(diagram, "op")


def test_torch_leaf_gets_its_own_node_per_use() -> None:
    ns = run(
        "import torch\nw = torch.ones(3, requires_grad=True)\nout = (w * 2 + w * 3 + w).sum()\n"
    )
    diagram = torch_graph.autograd_diagram(ns["out"], "out", ns)
    assert labels(diagram, "param") == ["w\n3"] * 3


def test_keras_training_step_in_tf_function_draws_ops_variables_and_gradients() -> None:
    ns = run(KERAS_STEP)
    call = tracking.last_call()
    assert call is not None and call.function is ns["train_step"]
    cf = call.function.get_concrete_function(*call.args, **call.kwargs)
    diagram = tf_graph.function_diagram(cf, keras_graph.handle_names(ns))
    ops = [label.split("\n")[0] for label in labels(diagram)]
    assert {"MatMul", "Relu", "BiasAdd"} <= set(ops)
    for hidden in (
        "Const",
        "Identity",
        "IdentityN",
        "NoOp",
        "ReadVariableOp",
        "Placeholder",
        "Shape",
    ):
        assert hidden not in ops
    params = {label.split("\n")[0] for label in labels(diagram, "param")}
    assert {"mlp/hidden/kernel", "mlp/hidden/bias", "mlp/out/kernel", "mlp/out/bias"} <= params
    grads = {label.split("\n")[0] for label in labels(diagram, "grad")}
    assert {"ReluGrad", "BiasAddGrad", "MatMul"} <= grads
    updates = labels(diagram, "update")
    assert any("mlp/hidden/kernel" in u for u in updates)  # the step's point: it writes the weights
    assert len(diagram.nodes) < 60

    drawn = graphs.draw(ns, "tensorflow", None)
    assert [(g.kind, g.title) for g in drawn] == [
        ("tf_function", "tf.function train_step"),
        ("structure", "Layers of model (Sequential)"),
    ]
    assert FILLS["grad"] in drawn[0].svg and "ReluGrad" in drawn[0].svg


def test_keras_model_called_on_inputs_is_drawn_as_a_traced_function() -> None:
    ns = run("""
        import tensorflow as tf, keras
        class Net(keras.Model):
            def __init__(self):
                super().__init__(name="net")
                self.a = keras.layers.Dense(3, name="a")
            def call(self, x):
                return tf.nn.relu(self.a(x))
        net = Net()
        out = net(tf.ones((2, 5)))
    """)
    drawn = graphs.draw(ns, "tensorflow", "net")
    assert [g.kind for g in drawn] == ["tf_function", "structure"]
    assert (
        "MatMul" in drawn[0].svg and "kernel" in drawn[0].svg and "inputs" in drawn[0].svg
    )
    assert "subclassed model" in drawn[1].svg


def test_nested_tf_function_calls_are_not_recorded_as_runs() -> None:
    ns = run("""
        import tensorflow as tf
        @tf.function
        def inner(x):
            return x * 2
        @tf.function
        def outer(x):
            return inner(x) + 1
        a = inner(tf.ones(2))
        b = outer(tf.ones(2))
    """)
    call = tracking.last_call()
    assert call is not None and call.function is ns["outer"]
    assert tracking.last_call(ns["inner"]) is not None  # its own, eager call
    graphs.install_tracking()  # a second install must not wrap twice
    ns["outer"](ns["a"])
    assert tracking.last_call() is not None


def test_structure_view_of_module_follows_forward() -> None:
    ns = run(TORCH_STEP)
    diagram = torch_graph.structure_diagram(ns["model"])
    text = labels(diagram)
    assert text[0] == "x" and text[-1] == "output"
    assert any(t.startswith("fc1\nLinear\nin_features=4") for t in text)
    assert "relu" in text


def test_structure_view_falls_back_to_children_when_forward_cannot_be_traced() -> None:
    ns = run("""
        import torch
        from torch import nn
        class Gate(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(2, 2)
                self.b = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
            def forward(self, x):
                return self.a(x) if x.sum() > 0 else self.b(x)
        gate = Gate()
    """)
    diagram = torch_graph.structure_diagram(ns["gate"])
    assert any("could not be traced" in n for n in diagram.notes)
    assert {label.split("\n")[0] for label in labels(diagram)} >= {"Gate", "a", "b", "b.0", "b.1"}


def test_structure_view_of_keras_sequential_lists_layers_in_order() -> None:
    ns = run(KERAS_STEP)
    diagram = keras_graph.structure_diagram(ns["model"])
    assert labels(diagram) == [
        "input\n?×4",
        "hidden\nDense(relu) → ?×8\n40 params",
        "out\nDense → ?×1\n9 params",
    ]
    assert len(diagram.edges) == 2


def test_structure_view_of_keras_functional_model_keeps_its_branches() -> None:
    ns = run("""
        import keras
        inp = keras.Input((3,), name="features")
        a = keras.layers.Dense(4, name="left")(inp)
        b = keras.layers.Dense(4, name="right")(inp)
        out = keras.layers.Concatenate(name="join")([a, b])
        model = keras.Model(inp, out)
    """)
    diagram = keras_graph.structure_diagram(ns["model"])
    first = {key: n.label.split("\n")[0] for key, n in diagram.nodes.items()}
    edges = {(first[s], first[d]) for s, d in diagram.edges}
    assert edges == {
        ("features", "left"),
        ("features", "right"),
        ("left", "join"),
        ("right", "join"),
    }
    assert [first[r] for r in diagram.roots] == ["join"]


def test_keras_fit_draws_the_train_step_its_loop_calls() -> None:
    ns = run("""
        import numpy as np, keras
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, name="lin")], name="fitme")
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)
    """)
    drawn = graphs.draw(ns, "tensorflow", None)
    assert drawn[0].kind == "tf_function" and drawn[0].title.endswith("(from library code)")
    svg = drawn[0].svg
    assert "only calls one_step_on_data" in svg
    assert "fitme/lin/kernel" in svg and "MatMul" in svg and FILLS["grad"] in svg


def test_node_cap_on_a_huge_graph_keeps_the_part_nearest_the_output() -> None:
    ns = run("""
        import torch
        w = torch.ones(2, requires_grad=True)
        z = torch.zeros(2)
        for _ in range(1000):
            z = z * w + 1.0
        total = z.sum()
    """)
    drawn = graphs.draw(ns, "pytorch", "total", max_nodes=300)
    graph = drawn[0]
    # drawn, not a timeout's note (nodes 0): the cap keeps dot within its render timeout
    assert graph.truncated and graph.nodes == 300
    assert "truncated: 300 of 3002 nodes shown" in graph.svg
    assert "total" in graph.svg and "Sum" in graph.svg  # the output end survives


def test_node_cap_on_a_huge_traced_function() -> None:
    ns = run("""
        import tensorflow as tf
        @tf.function
        def long(x):
            for _ in range(500):
                x = tf.tanh(x) * 1.01
            return x
        r = long(tf.ones(3))
    """)
    drawn = graphs.draw(ns, "tensorflow", None, max_nodes=120)
    assert drawn[0].truncated and drawn[0].nodes == 120  # drawn within the render timeout
    assert "truncated: 120 of" in drawn[0].svg


def test_hostile_module_name_is_escaped_and_never_reaches_the_svg_as_markup() -> None:
    ns = run("""
        import torch
        from torch import nn
        evil = nn.Sequential()
        evil.add_module("<script>alert(1)</script>", nn.Linear(2, 2))
        out = evil(torch.ones(1, 2)).sum()
    """)
    drawn = graphs.draw(ns, "pytorch", None)
    assert len(drawn) == 2
    for graph in drawn:
        assert "<script" not in graph.svg.lower()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in graph.svg


def test_hostile_layer_name_cannot_break_out_of_its_dot_label() -> None:
    name = '"];evil[label="x'
    ns = run(f"""
        import tensorflow as tf, keras
        model = keras.Sequential([keras.layers.Dense(2, name={name!r}), keras.layers.Dense(1)])
        out = model(tf.ones((1, 3)))
    """)
    diagram = keras_graph.structure_diagram(ns["model"])
    dot = to_dot(diagram)
    assert '\\"];evil[label=\\"x' in dot
    assert "evil [" not in dot and "evil[" not in dot.replace('\\"];evil[label=\\"x', "")
    drawn = graphs.draw(ns, "tensorflow", "model")
    structure = drawn[-1].svg
    assert structure.count('<g class="node">') == len(diagram.nodes) == 3
    assert name in structure  # shown literally, as text


def test_dot_labels_escape_quotes_backslashes_newlines_and_entities() -> None:
    assert quote('a"b') == '"a\\"b"'
    assert quote("a\\nb") == '"a\\\\nb"'
    assert quote("two\nlines") == '"two\\nlines"'
    assert quote("&lt;") == '"&amp;lt;"'
    assert quote("x" * 100).endswith('…"')


def test_svg_cleaning_removes_everything_that_can_run_or_fetch() -> None:
    hostile = """<?xml version="1.0"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">
<!-- comment -->
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     width="10" height="10" onload="alert(1)">
  <script>alert(2)</script>
  <g id="g1" onclick="alert(3)"><title>n0</title>
    <a xlink:href="javascript:alert(4)"><text x="1" y="2">link</text></a>
    <image href="http://example.com/x.png"/>
    <foreignObject><div>html</div></foreignObject>
    <polygon fill="url(http://example.com/#p)" points="0,0 1,1"/>
    <text x="1" y="2" style="background:url(x)">kept</text>
  </g>
</svg>"""
    svg = clean_svg(hostile, {"n0": "tip"})
    for bad in (
        "<?xml",
        "DOCTYPE",
        "<!--",
        "script",
        "onload",
        "onclick",
        "javascript",
        "<a",
        "image",
        "foreignObject",
        "http://example.com",
        "style",
        "id=",
    ):
        assert bad not in svg
    assert "kept" in svg and "<title>tip</title>" in svg
    with pytest.raises(RenderError):
        clean_svg('<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>')


def _dot_children() -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        if comm == "dot" and int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


def test_render_timeout_kills_dot_and_returns() -> None:
    # A chain of ops all fed by one shared node: dot needs minutes for 200 of them.
    diagram = Diagram()
    hub = diagram.add(Node("hub", "param"))
    prev = None
    for i in range(200):
        key = diagram.add(Node(f"op {i}"))
        diagram.link(hub, key)
        if prev is not None:
            diagram.link(prev, key)
        prev = key
    diagram.roots.append(key)
    started = time.perf_counter()
    drawn = render(diagram, max_nodes=300, timeout_s=0.3)
    assert time.perf_counter() - started < 3.0
    assert drawn.truncated and drawn.nodes == 0
    assert "render timed out" in drawn.svg
    assert _dot_children() == []


def test_draw_turns_every_failure_into_a_note() -> None:
    ns = run("""
        import tensorflow as tf, keras
        unbuilt = keras.Sequential([keras.layers.Dense(2)])
        @tf.function
        def never(x):
            return x
        t = tf.ones(2)
        n = 3
    """)
    cases = {
        "missing": "missing is not defined by the snippet",
        "n": "n is a int, not a tf.function or a Keras model",
        "never": "never was never called",
        "t": "eager code leaves no graph",
        "unbuilt": "could not draw this graph",
    }
    for target, text in cases.items():
        drawn = graphs.draw(ns, "tensorflow", target)
        assert drawn and text in drawn[0].svg, target
        assert all(g.nodes == 0 for g in drawn[:1])
    assert graphs.draw({}, "pytorch", None)[0].nodes == 0
