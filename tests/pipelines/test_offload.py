"""Model CPU offload: with offload on, exactly one component sits on the accelerator at a time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from yingxi.pipelines.offload import Placement, offload_mode, pack_, stream_blocks
from yingxi.pipelines.wan.common import WAN_OFFLOAD_ORDER, WAN_STREAMED


class FakeModule:
    """Records where it was moved; stands in for a module on a machine without an accelerator."""

    def __init__(self):
        self.where = torch.device("cuda", 0)  # starts "on the GPU" to show construction moves it home

    def to(self, device):
        self.where = torch.device(device)
        return self

    def parameters(self):
        return iter([SimpleNamespace(device=self.where)])


def fakes(*names):
    return {n: SimpleNamespace(model=FakeModule()) for n in names}


def test_offload_keeps_one_component_on_the_device_at_a_time():
    parts = fakes(*WAN_OFFLOAD_ORDER)
    placement = Placement(
        parts, torch.device("cuda"), order=WAN_OFFLOAD_ORDER, streamed=WAN_STREAMED, offload=True
    )
    assert placement.on_device() == []  # everything starts on the CPU
    for name in WAN_OFFLOAD_ORDER:
        with placement.use(name) as component:
            assert component is parts[name]
            assert placement.on_device() == [name]
    with placement.use("transformer"):  # switching back (e.g. the next run) moves the VAE out
        assert placement.on_device() == ["transformer"]
    placement.release()
    assert placement.on_device() == []


def test_without_offload_everything_stays_on_the_device():
    parts = fakes("text_encoder", "transformer", "vae")
    placement = Placement(
        parts | {"image_encoder": None},
        torch.device("cuda"),
        order=WAN_OFFLOAD_ORDER,
        streamed=WAN_STREAMED,
        offload=False,
    )
    with placement.use("vae"):
        assert placement.on_device() == ["text_encoder", "transformer", "vae"]
    placement.release()
    assert placement.on_device() == ["text_encoder", "transformer", "vae"]


def test_offload_on_cpu_is_a_no_op_and_unknown_parts_are_refused():
    parts = fakes("transformer")
    placement = Placement(
        parts, torch.device("cpu"), order=WAN_OFFLOAD_ORDER, streamed=WAN_STREAMED, offload=True
    )
    assert not placement.offload
    with pytest.raises(ValueError, match="not in the offload order"):
        Placement(
            fakes("unet"), torch.device("cuda"), order=WAN_OFFLOAD_ORDER, streamed=WAN_STREAMED, offload=True
        )


def tiny_dit():
    from yingxi.models.wan.config import WanDiTConfig
    from yingxi.models.wan.dit import WanDiT

    torch.manual_seed(0)
    cfg = WanDiTConfig(num_attention_heads=2, attention_head_dim=16, text_dim=8, freq_dim=16, ffn_dim=32,
                       num_layers=3, rope_max_seq_len=16)  # fmt: skip
    return WanDiT(cfg).eval()


def dit_inputs(device="cpu"):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 2, 4, 4, generator=g)
    ctx = torch.randn(1, 6, 8, generator=g)
    return x.to(device), torch.tensor([500.0]).to(device), ctx.to(device)


def test_block_streaming_gives_the_same_output_and_keeps_weights_home():
    dit = tiny_dit()
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
        assert placement.streamed == {"transformer"}
        homes = [p.data.data_ptr() for p in dit.blocks.parameters()]
        with placement.use("transformer") as model:
            got = model(*dit_inputs())
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert [p.data.data_ptr() for p in dit.blocks.parameters()] == homes  # the CPU copy is the only copy


def test_block_streaming_moves_each_block_in_only_for_its_forward(monkeypatch):
    """This machine has no accelerator: a copy on the CPU stands in for the host-to-device copy."""
    from yingxi.pipelines import offload

    copies = []

    def fake_copy(t, device):
        copies.append(t.data_ptr())
        return t.clone()

    monkeypatch.setattr(offload, "_to_device", fake_copy)
    dit = tiny_dit()
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
        homes = [{p.data_ptr() for p in block.parameters()} for block in dit.blocks]
        during = []
        for block in dit.blocks:  # registered after the streaming hooks: sees the block as its forward does
            block.register_forward_pre_hook(
                lambda m, a: during.append({p.data_ptr() for p in m.parameters()})
            )
        with placement.use("transformer") as model:
            got = model(*dit_inputs())
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert len(during) == 3 and all(not (d & h) for d, h in zip(during, homes, strict=True))  # copies in use
    assert [{p.data_ptr() for p in block.parameters()} for block in dit.blocks] == homes  # and dropped after
    assert len(copies) == sum(len(list(b.parameters())) + len(list(b.buffers())) for b in dit.blocks)


def test_offload_mode_names():
    assert [offload_mode(o) for o in (None, False, "none", True, "model", "blocks")] == [
        "none", "none", "none", "model", "model", "blocks",
    ]  # fmt: skip
    with pytest.raises(ValueError, match='"none", "model" or "blocks"'):
        offload_mode("layers")  # type: ignore[arg-type]


def test_pack_lays_tensors_back_to_back_in_few_buffers():
    g = torch.Generator().manual_seed(0)
    # ten 14B blocks scaled down 64x per side (5120 -> 80, 13824 -> 216): bf16 projections and FFN
    # matrices, fp32 norm weights and modulation tables, as `stream_blocks` finds them
    tensors = []
    for _ in range(10):
        tensors += [torch.randn(80, 80, generator=g).bfloat16() for _ in range(8)]
        tensors += [
            torch.randn(216, 80, generator=g).bfloat16(),
            torch.randn(80, 216, generator=g).bfloat16(),
        ]
        tensors += [torch.randn(80, generator=g), torch.randn(1, 6, 80, generator=g), torch.tensor(3.0)]
    before = [t.clone() for t in tensors]
    data = sum(t.numel() * t.element_size() for t in tensors)
    buffers = pack_(tensors, pin=False, chunk=1 << 18)
    for t, b in zip(tensors, before, strict=True):
        assert t.dtype == b.dtype and torch.equal(t, b)  # same values, shapes and dtypes
        assert t.data_ptr() % 64 == 0 and any(  # a view into one of the buffers, aligned
            buf.data_ptr() <= t.data_ptr() < buf.data_ptr() + buf.numel() for buf in buffers
        )
    assert sum(b.numel() for b in buffers) < 1.2 * data
    # one power-of-two allocation per tensor (torch's pinned allocator, tensor by tensor) takes ~1.5x:
    assert sum(1 << (t.numel() * t.element_size() - 1).bit_length() for t in tensors) > 1.4 * data


def test_pinned_block_streaming_packs_each_weight_once_and_keeps_outputs():
    dit = tiny_dit()
    with torch.no_grad():
        expected = dit(*dit_inputs())
        stream_blocks(dit.blocks, torch.device("cpu"), pin=True)  # no CUDA here: plain packed buffers
        storages = {p.untyped_storage().data_ptr() for p in dit.blocks.parameters()}
        got = dit(*dit_inputs())
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert len(storages) == 1  # the tiny model's blocks fit one 1 GiB buffer


def test_the_order_is_data_another_familys_parts_work_too():
    """The shared Placement knows no family's names: an LTX-2-like order (with an audio VAE and vocoder)
    places its parts the same way, and on_device() reports in that order."""
    order = ("text_encoder", "connectors", "transformer", "vae", "audio_vae", "vocoder")
    parts = fakes(*order)
    placement = Placement(parts, torch.device("cuda"), order=order, offload="model")
    for name in order:
        with placement.use(name):
            assert placement.on_device() == [name]
    with pytest.raises(ValueError, match="not in the offload order"):
        Placement(fakes("image_encoder"), torch.device("cuda"), order=order, offload=True)
    everything = Placement(fakes(*order), torch.device("cuda"), order=order, offload=False)
    assert everything.on_device() == list(order)


def test_only_the_named_block_lists_stream_and_the_rest_moves_whole(monkeypatch):
    """The block lists are data (the family's `block_lists`): a list not named moves with the component."""
    from torch import nn

    from yingxi.pipelines import offload

    copies = []
    monkeypatch.setattr(offload, "_to_device", lambda t, device: copies.append(t.data_ptr()) or t.clone())

    class TwoLists(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 4)
            self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
            self.side_blocks = nn.ModuleList([nn.Linear(4, 4)])

        def forward(self, x):
            for block in [*self.blocks, *self.side_blocks]:
                x = block(x)
            return self.head(x)

    x = torch.randn(3, 4)
    for lists, streamed_lists in [
        (("blocks",), ["blocks"]),
        (("blocks", "side_blocks"), ["blocks", "side_blocks"]),
    ]:
        model, copies[:] = TwoLists(), []
        expected = model(x)
        placement = Placement({"transformer": model}, torch.device("cpu"), order=["transformer"],
                              streamed=["transformer"], block_lists=lists, offload="blocks", force=True)  # fmt: skip
        with torch.no_grad(), placement.use("transformer") as m:
            torch.testing.assert_close(m(x), expected, rtol=0, atol=0)
        per_list = sum(len(list(getattr(model, n).parameters())) for n in streamed_lists)
        assert len(copies) == per_list  # each named list's tensors came in for its block's forward only
