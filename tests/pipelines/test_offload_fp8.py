"""Block offload of a quantized transformer: the blocks travel as stored (float8 + scales), not widened."""

from __future__ import annotations

import torch
from test_offload import dit_inputs, tiny_dit

from yingxi.models.fp8 import module_bytes, quantize_linears_
from yingxi.models.quant import QuantLinear
from yingxi.models.wan.loading import FP8_LAYERS
from yingxi.pipelines import offload
from yingxi.pipelines.offload import Placement, pack_, stream_blocks
from yingxi.pipelines.wan.common import WAN_OFFLOAD_ORDER, WAN_STREAMED


def fp8_dit():
    dit = quantize_linears_(tiny_dit(), FP8_LAYERS.match)
    assert sum(isinstance(m, QuantLinear) for m in dit.blocks.modules()) == 3 * 10
    return dit


def test_streamed_fp8_blocks_give_the_resident_output_and_move_only_the_quantized_bytes(monkeypatch):
    """No accelerator here: a CPU copy stands in for the host-to-device copy and counts its bytes."""
    copied: list[tuple[torch.dtype, int]] = []

    def fake_copy(t, device):
        copied.append((t.dtype, t.numel() * t.element_size()))
        return t.clone()

    monkeypatch.setattr(offload, "_to_device", fake_copy)
    dit = fp8_dit()
    bf16_blocks = sum(  # what the same blocks would move in bf16
        m.out_features * m.in_features * 2 for m in dit.blocks.modules() if isinstance(m, QuantLinear)
    )
    with torch.no_grad():
        expected = dit(*dit_inputs())
        placement = Placement(
            {"transformer": dit},
            torch.device("cpu"),
            order=WAN_OFFLOAD_ORDER,
            streamed=WAN_STREAMED,
            offload="blocks",
            force=True,
        )
        with placement.use("transformer") as model:
            got = model(*dit_inputs())
    assert torch.equal(got, expected)
    assert sum(n for _, n in copied) == module_bytes(dit.blocks)  # each block once, as stored
    fp8_bytes = sum(n for dtype, n in copied if dtype == torch.float8_e4m3fn)
    assert fp8_bytes == bf16_blocks // 2  # the Linear weights went as float8, one byte each
    assert {dtype for dtype, _ in copied} == {torch.float8_e4m3fn, torch.float32}  # + scales, biases, norms


def test_packed_fp8_blocks_stream_from_their_buffers():
    """What a CUDA run does first: the blocks' tensors, float8 included, packed back to back into byte
    buffers (small chunks here instead of pinned 1 GiB ones)."""
    dit = fp8_dit()
    tensors = [t for block in dit.blocks for t in [*block.parameters(), *block.buffers()]]
    with torch.no_grad():
        expected = dit(*dit_inputs())
        buffers = pack_(tensors, pin=False, chunk=1 << 16)
        layer = dit.blocks[1].attn1.to_q
        assert layer.qweight.dtype == torch.float8_e4m3fn
        starts = {b.untyped_storage().data_ptr() for b in buffers}
        assert layer.qweight.untyped_storage().data_ptr() in starts  # a view into a packed buffer
        assert sum(b.numel() for b in buffers) < 2 * module_bytes(dit.blocks)  # packed at their stored size
        handles = stream_blocks(dit.blocks, torch.device("cpu"), pin=False)
        got = dit(*dit_inputs())
    for h in handles:
        h.remove()
    assert torch.equal(got, expected)
