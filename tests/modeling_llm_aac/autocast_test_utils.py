"""CUDA autocast's rule for `layer_norm`, reproduced under CPU autocast for tests.

CUDA autocast has `layer_norm` on its float32 list (the input is upcast, the output is float32); CPU autocast leaves
it alone, so on CPU a bf16 input simply gives a bf16 output. `cuda_layer_norm_autocast_rule()` patches
`torch.nn.functional.layer_norm` (which `nn.LayerNorm` and the EAT modules call) to upcast while CPU autocast is on,
which is what the dispatcher does on CUDA: code that turns autocast off around its call escapes the rule there too.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


@contextlib.contextmanager
def cuda_layer_norm_autocast_rule():
    original = F.layer_norm

    def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        if torch.is_autocast_enabled("cpu"):
            upcast = [None if t is None else t.float() for t in (weight, bias)]
            with torch.autocast("cpu", enabled=False):
                return original(input.float(), normalized_shape, upcast[0], upcast[1], eps)
        return original(input, normalized_shape, weight, bias, eps)

    F.layer_norm = layer_norm
    try:
        yield
    finally:
        F.layer_norm = original
