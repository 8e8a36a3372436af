"""Parameter and FLOP counting."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, conv_backward_flop


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts; frozen parameters (e.g. a fixed ``W_in``) count in total only.

    Works on modules built on the meta device too, where parameters hold no memory.
    """
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable


def _grouped_conv_backward_flop(
    grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed, output_padding, groups,
    output_mask, out_shape, **kwargs,
) -> int:  # fmt: skip
    """PyTorch's ``convolution_backward`` FLOPs with the weight gradient divided by ``groups``.

    PyTorch's formula counts the weight gradient of a grouped convolution as if it were dense, ``groups``
    times too many (a depthwise convolution over C channels: C times).
    """
    formula = getattr(conv_backward_flop, "__wrapped__", conv_backward_flop)  # the formula on shapes
    args = (grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed, output_padding)
    args += (groups,)
    flops = formula(*args, [output_mask[0], False], out_shape)
    if output_mask[1]:
        flops += formula(*args, [False, True], out_shape) // groups
    return flops


def count_training_flops(forward: Callable[[], torch.Tensor]) -> int:
    """FLOPs of ``forward()`` and of the backward pass of its sum, by PyTorch's ``FlopCounterMode``.

    Lightning's ``measure_flops`` with one correction (grouped convolutions' weight gradients, see
    :func:`_grouped_conv_backward_flop`). Counted: matrix products, convolutions and attention; not
    counted: elementwise work (activations, norms, the recurrences of the sequence mixers' scans, FFTs).
    Run it on the meta device to count without memory or compute.
    """
    mapping = {torch.ops.aten.convolution_backward: _grouped_conv_backward_flop}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        forward().sum().backward()
    return counter.get_total_flops()


def count_forward_flops(forward: Callable[[], object]) -> dict[str, int]:
    """FLOPs of ``forward()`` without gradients, by module: ``{"Global": ..., "Net.blocks.0": ...}``.

    Module names as PyTorch's ``FlopCounterMode`` gives them: the root module's class name, then the
    attribute path; what it counts is said in :func:`count_training_flops`.
    """
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        forward()
    return {name: sum(by_op.values()) for name, by_op in counter.get_flop_counts().items()}
