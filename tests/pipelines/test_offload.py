"""Model CPU offload: with offload on, exactly one component sits on the accelerator at a time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from yingxi.pipelines.wan.offload import OFFLOAD_ORDER, Placement


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
    parts = fakes(*OFFLOAD_ORDER)
    placement = Placement(parts, torch.device("cuda"), offload=True)
    assert placement.on_device() == []  # everything starts on the CPU
    for name in OFFLOAD_ORDER:
        with placement.use(name) as component:
            assert component is parts[name]
            assert placement.on_device() == [name]
    with placement.use("transformer"):  # switching back (e.g. the next run) moves the VAE out
        assert placement.on_device() == ["transformer"]
    placement.release()
    assert placement.on_device() == []


def test_without_offload_everything_stays_on_the_device():
    parts = fakes("text_encoder", "transformer", "vae")
    placement = Placement(parts | {"image_encoder": None}, torch.device("cuda"), offload=False)
    with placement.use("vae"):
        assert placement.on_device() == ["text_encoder", "transformer", "vae"]
    placement.release()
    assert placement.on_device() == ["text_encoder", "transformer", "vae"]


def test_offload_on_cpu_is_a_no_op_and_unknown_parts_are_refused():
    parts = fakes("transformer")
    placement = Placement(parts, torch.device("cpu"), offload=True)
    assert not placement.offload
    with pytest.raises(ValueError, match="not in OFFLOAD_ORDER"):
        Placement(fakes("unet"), torch.device("cuda"), offload=True)
