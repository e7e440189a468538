"""Prepared spares: the start-up a snippet's text says it will pay, made before it arrives.

A snippet that imports the other framework pays that import in its own run
(≈ 1.2 s for torch in a TensorFlow spare, ≈ 2 s for TensorFlow and Keras in a
PyTorch one); one that splits the CPU into logical devices needs a
TensorFlow runtime started for it alone (≈ 0.2 s more). Once such a snippet
runs, the pool keeps one spare prepared that way for the next (`spares.py`):
a learner's next Run of that step, edited or not, finds it ready.

    with-torch       TensorFlow spare with torch imported
    with-tensorflow  PyTorch spare with TensorFlow and Keras imported (Keras's
                     default backend: the snippet names no KERAS_BACKEND)
    keras-on-torch   PyTorch spare with Keras imported on its torch backend, as
                     the snippet sets it
    compiler         PyTorch spare that compiled and exported a small model once
                     (then reset Dynamo): the caches a first trace fills, ≈ 0.1 s
    onnx-export      PyTorch spare that exported a small model to ONNX and ran it
                     in onnxruntime once (then reset Dynamo), ≈ 0.1 s
    cpus-N           TensorFlow spare whose runtime started with the CPU split
                     into N logical devices, exactly as the snippet asks:
                     TensorFlow takes the same configuration again once started
                     (any other would raise, so nothing else is matched)

The text is a hint, as for the warm-ups (`reserve.py`): a snippet the rules
misread runs in a spare that did less for it. The one way to mislead them is
to choose Keras's backend without naming KERAS_BACKEND in the text (a key
built from pieces): that snippet's Keras then stays on TensorFlow. Every run
asks, on the pool's loop: imports are read from the text's lines, and only a
snippet that sets TensorFlow's runtime up (a fresh spare otherwise) is parsed,
and only up to `MAX_PARSED_BYTES` (parsing 64 KiB takes ≈ 50 ms).
"""

from __future__ import annotations

import ast
import re

from sandbox.protocol import Framework
from sandbox.reserve import FRESH_RUNTIME

MAX_PARSED_BYTES = 16 * 1024
# An import statement's line: `from a.b import c`, or `import a.b as c, d`.
_IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import\b|import[ \t]+([^\n#;]+))",
                          re.MULTILINE)
_KERAS_ON_TORCH = re.compile(
    r"""KERAS_BACKEND['"]\s*(\]\s*=|,)\s*['"]torch['"]""")  # environ[...] = / setdefault(...,
_ONNX_EXPORTS = re.compile(r"\btorch\.onnx\b")
_COMPILES = re.compile(r"\btorch\.(compile|export)\b|\btorch\._dynamo\.")
_CPU_SPLIT_CALLS = {"set_logical_device_configuration", "set_virtual_device_configuration"}
_CONFIGURATION_NAMES = {"LogicalDeviceConfiguration", "VirtualDeviceConfiguration"}


def setup_for(framework: Framework, code: str) -> str | None:
    """The prepared spare this snippet would use, or None."""
    modules = _imported(code)
    roots = {name.partition(".")[0] for name in modules}
    if framework == "tensorflow":
        settings = {match.group(0) for match in FRESH_RUNTIME.finditer(code)}
        if settings:  # a runtime started for it alone, unless it only splits the CPU
            cpus = _cpu_split(code) if settings <= _CPU_SPLIT_CALLS else None
            return f"cpus-{cpus}" if cpus is not None else None
        # The porter (lesson 26 runs it in the snippet) imports torch too.
        wants_torch = "torch" in roots or any(
            name == "sandbox.porter" or name.startswith("sandbox.porter.") for name in modules)
        return "with-torch" if wants_torch else None
    if "keras" in roots and _KERAS_ON_TORCH.search(code):
        return "keras-on-torch"
    if roots & {"tensorflow", "keras"} and "KERAS_BACKEND" not in code:
        return "with-tensorflow"
    if "onnxruntime" in roots or _ONNX_EXPORTS.search(code):
        return "onnx-export"
    return "compiler" if _COMPILES.search(code) else None


def cpus_of(setup: str | None) -> int | None:
    """N for a cpus-N kind; None for any other."""
    return int(setup.removeprefix("cpus-")) if setup and setup.startswith("cpus-") else None


def _imported(code: str) -> set[str]:
    """Every module the snippet's import lines name, by its full name."""
    modules: set[str] = set()
    for line in _IMPORT_LINE.finditer(code):
        if line.group(1):
            modules.add(line.group(1))
        else:
            modules.update(words[0] for part in line.group(2).split(",")
                           if (words := part.split()))
    return modules


def _cpu_split(code: str) -> int | None:
    """N when the snippet's only runtime setting is one top-level call that splits a
    device into N default logical devices (`[LogicalDeviceConfiguration()] * N`, or
    the list written out); None for anything else."""
    if len(code.encode()) > MAX_PARSED_BYTES:
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return None
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and _name(node.func) in _CPU_SPLIT_CALLS]
    top_level = {id(statement.value) for statement in tree.body
                 if isinstance(statement, ast.Expr)}
    if len(calls) != 1 or id(calls[0]) not in top_level:
        return None
    call = calls[0]
    if len(call.args) != 2 or call.keywords:
        return None
    devices = call.args[1]
    count: int | None = None
    if isinstance(devices, ast.BinOp) and isinstance(devices.op, ast.Mult) \
            and isinstance(devices.left, ast.List) and len(devices.left.elts) == 1 \
            and isinstance(devices.right, ast.Constant) and type(devices.right.value) is int:
        elements, count = devices.left.elts, devices.right.value
    elif isinstance(devices, ast.List):
        elements, count = devices.elts, len(devices.elts)
    else:
        return None
    if not all(_default_configuration(element) for element in elements):
        return None
    return count if 2 <= count <= 8 else None


def _default_configuration(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _name(node.func) in _CONFIGURATION_NAMES \
        and not node.args and not node.keywords


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None
