"""A port as asked for: a model file or a snippet, and the options, from a form or JSON.

The API's multipart form and the `/port` page's form carry the same fields
(and may carry the user's own inputs, `inputs`: a .npy or .npz file); a JSON
body carries a snippet. Each becomes a `PortOrder`, or a refusal that says
which field is wrong.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from app.ports.uploads import UploadRefused, inputs_suffix_of, suffix_of
from sandbox.protocol import PortOrder

CHECKED = ("on", "true", "1", "yes")  # a checkbox, or an API client's boolean


def refusal(exc: ValidationError) -> UploadRefused:
    """A pydantic refusal, one line per field, never echoing the input back."""
    lines = [f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}"
             for e in exc.errors()[:5]]
    return UploadRefused(422, "; ".join(lines))


def order_of(fields: dict[str, Any]) -> PortOrder:
    try:
        return PortOrder.model_validate(fields)
    except ValidationError as exc:
        raise refusal(exc) from None


def options_of(form: FormData) -> dict[str, Any]:
    """The options a form sent; those left empty keep their defaults."""
    options: dict[str, Any] = {}
    for name in ("layout", "atol", "rtol"):
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            options[name] = value.strip()
    onnx = form.get("onnx")
    options["onnx"] = isinstance(onnx, str) and onnx.strip().lower() in CHECKED
    return options


def _file(form: FormData, name: str) -> UploadFile | None:
    upload = form.get(name)
    if isinstance(upload, str) and upload.strip():
        raise UploadRefused(422, f"`{name}` is a file: send it as one, not as text.")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None  # a file input left empty still sends a nameless part
    return upload


def form_order(form: FormData) -> tuple[PortOrder, UploadFile | None, UploadFile | None]:
    """The order a form makes: its `file`, else its `code` (a page's form has both fields),
    and the user's inputs to prove it on, if the form has them."""
    upload, given = _file(form, "file"), _file(form, "inputs")
    options = options_of(form)
    if given is not None:
        options["inputs"] = inputs_suffix_of(given.filename or "")
    code = form.get("code")
    code = code.replace("\r\n", "\n") if isinstance(code, str) and code.strip() else None
    if upload is not None and code is not None:
        raise UploadRefused(422, "Send a model file or a snippet, not both.")
    if upload is not None:
        filename = upload.filename or ""
        suffix_of(filename)
        return order_of({"filename": _plain_name(filename), **options}), upload, given
    if code is None:
        raise UploadRefused(422, "Send a model file (.keras or .h5) as `file`, or a snippet "
                                 "that builds a Keras model as `code`.")
    return order_of({"code": code, **options}), None, given


def json_order(body: bytes) -> PortOrder:
    """A JSON body: a snippet and options (a model file is sent as multipart)."""
    try:
        order = PortOrder.model_validate_json(body)
    except ValidationError as exc:
        raise refusal(exc) from None
    if order.filename is not None or order.inputs is not None:
        raise UploadRefused(422, "A model file, or inputs to prove it on, are sent as "
                                 "multipart form data (`file`, `inputs`), not named in JSON.")
    return order


def _plain_name(filename: str) -> str:
    """The name as the port records it: the last part of a path a browser may send, capped."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    stem, _, suffix = name.rpartition(".")
    return f"{stem[:200]}.{suffix}"
