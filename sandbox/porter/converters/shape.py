"""Flatten, Reshape, Permute, ZeroPadding, Cropping, UpSampling."""

from __future__ import annotations

from typing import Any

from ..converted import Converted, Site, Trap
from ..forward import permutation
from ._util import held

FLATTEN = Trap("flatten-channels-last", "Keras flattens (h, w, c), not (c, h, w): channels "
               "last first", "forward")


def flatten(layer: Any, site: Site) -> Converted:
    if site.in_layouts[0] == "cf" and site.rank >= 3:
        back = permutation("cf", site.rank)
        return Converted("nn.Flatten()", ("cf",), "cl", call=f"{{m}}({{x0}}.permute{back!r})",
                         traps=[FLATTEN])
    return Converted("nn.Flatten()", ("cl",), "cl")


def reshape(layer: Any, site: Site) -> Converted:
    shape = tuple(int(d) for d in layer.target_shape)
    return Converted(f"Reshape({shape!r})", ("cl",), "cl", helpers=("Reshape",))


def permute(layer: Any, site: Site) -> Converted:
    dims = tuple(int(d) for d in layer.dims)
    return Converted(f"Permute({dims!r})", ("cl",), "cl", helpers=("Permute",))


def torch_pads(pairs: Any, n: int) -> list[int]:
    """Keras's (before, after) per spatial axis, first axis first, as F.pad's list, last
    axis first; ZeroPadding1D/Cropping1D give one pair."""
    pairs = [pairs] if n == 1 else list(pairs)
    return [int(p) for pair in reversed(pairs) for p in pair]


def repeat_vector(layer: Any, site: Site) -> Converted:
    return Converted(f"RepeatVector({int(layer.n)})", ("cl",), "cl", helpers=("RepeatVector",))


def zero_padding(layer: Any, site: Site) -> Converted | None:
    n = site.rank - 2
    if n not in (1, 2, 3):
        return None
    lay = held(layer)
    pads = torch_pads(layer.padding, n)
    return Converted(f"nn.ZeroPad{n}d({tuple(pads)!r})", (lay,), lay)


def cropping(layer: Any, site: Site) -> Converted | None:
    """Negative padding crops: nn.ZeroPad*d((-left, -right, ...))."""
    n = site.rank - 2
    if n not in (1, 2, 3):
        return None
    lay = held(layer)
    pads = torch_pads(layer.cropping, n)
    return Converted(f"nn.ZeroPad{n}d({tuple(-p for p in pads)!r})", (lay,), lay)


def upsampling(layer: Any, site: Site) -> Converted | None:
    n = site.rank - 2
    if n == 1:
        return Converted(f"nn.Upsample(scale_factor={int(layer.size)}, mode=\"nearest\")",
                         ("cf",), "cf")
    mode = getattr(layer, "interpolation", "nearest")
    if mode not in ("nearest", "bilinear") or (mode == "bilinear" and n != 2):
        return None
    lay = held(layer)
    size = tuple(float(s) for s in layer.size)
    corners = ", align_corners=False" if mode == "bilinear" else ""
    return Converted(f"nn.Upsample(scale_factor={size!r}, mode={mode!r}{corners})",
                     (lay,), lay)


CONVERTERS = {"Flatten": flatten, "Reshape": reshape, "Permute": permute,
              "RepeatVector": repeat_vector,
              "ZeroPadding1D": zero_padding, "ZeroPadding2D": zero_padding,
              "ZeroPadding3D": zero_padding, "Cropping1D": cropping, "Cropping2D": cropping,
              "Cropping3D": cropping, "UpSampling1D": upsampling, "UpSampling2D": upsampling,
              "UpSampling3D": upsampling}
