"""Flatten, Reshape, Permute, ZeroPadding, UpSampling."""

from __future__ import annotations

from typing import Any

from ..converted import Converted, Site, Trap
from ..forward import permutation
from ._util import channels_last

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


def zero_padding(layer: Any, site: Site) -> Converted | None:
    n = site.rank - 2
    if not channels_last(layer) or n not in (1, 2):
        return None
    pads: list[int] = []
    if n == 1:
        pads = list(layer.padding)
    else:
        (top, bottom), (left, right) = layer.padding
        pads = [left, right, top, bottom]
    return Converted(f"nn.ZeroPad{n}d({tuple(int(p) for p in pads)!r})", ("cf",), "cf")


def cropping(layer: Any, site: Site) -> Converted | None:
    """Negative padding crops: nn.ZeroPad*d((-left, -right, ...))."""
    n = site.rank - 2
    if not channels_last(layer) or n not in (1, 2):
        return None
    if n == 1:
        left, right = layer.cropping
        pads = [left, right]
    else:
        (top, bottom), (left, right) = layer.cropping
        pads = [left, right, top, bottom]
    return Converted(f"nn.ZeroPad{n}d({tuple(-int(p) for p in pads)!r})", ("cf",), "cf")


def upsampling(layer: Any, site: Site) -> Converted | None:
    n = site.rank - 2
    if n == 1:
        return Converted(f"nn.Upsample(scale_factor={int(layer.size)}, mode=\"nearest\")",
                         ("cf",), "cf")
    mode = layer.interpolation
    if not channels_last(layer) or mode not in ("nearest", "bilinear"):
        return None
    size = tuple(float(s) for s in layer.size)
    corners = ", align_corners=False" if mode == "bilinear" else ""
    return Converted(f"nn.Upsample(scale_factor={size!r}, mode={mode!r}{corners})",
                     ("cf",), "cf")


CONVERTERS = {"Flatten": flatten, "Reshape": reshape, "Permute": permute,
              "ZeroPadding1D": zero_padding, "ZeroPadding2D": zero_padding,
              "Cropping1D": cropping, "Cropping2D": cropping,
              "UpSampling1D": upsampling, "UpSampling2D": upsampling}
