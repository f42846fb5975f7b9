"""`weights=` through load_pipeline and the CLI, and check_fits with fp8 weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import yingxi
from yingxi.cli import main
from yingxi.errors import InputError
from yingxi.models.quant import QuantLinear
from yingxi.models.wan.config import VARIANTS
from yingxi.pipelines.wan.load import check_fits


def test_check_fits_counts_fp8_weights_at_a_byte_each():
    card_24gb, bf16 = 24 * 10**9, torch.bfloat16
    t2v_14b, a14b = VARIANTS["wan2.1-t2v-14b"], VARIANTS["wan2.2-t2v-a14b"]
    with pytest.raises(InputError, match=r"26\.6 GiB in bfloat16"):
        check_fits(t2v_14b, bf16, "model", card_24gb)
    check_fits(t2v_14b, bf16, "model", card_24gb, "fp8")  # 13.6 GiB: fits without streaming blocks
    check_fits(t2v_14b, bf16, "none", card_24gb, "fp8")
    with pytest.raises(InputError, match=r"27\.1 GiB in fp8 with offload 'none'"):  # two experts resident
        check_fits(a14b, bf16, "none", card_24gb, "fp8")
    check_fits(a14b, bf16, "model", card_24gb, "fp8")  # one expert at a time


def test_load_pipeline_weights_fp8_quantizes_the_transformer_and_renders(tiny_wan):
    pipe = yingxi.pipelines.wan.load_pipeline(tiny_wan("t2v"), weights="fp8")
    dit = pipe.components.transformer
    assert sum(isinstance(m, QuantLinear) for m in dit.modules()) == dit.config.num_layers * 10
    frames = pipe(prompt="a cat walks on the beach at sunset", width=32, height=32, num_frames=5,
                  num_inference_steps=2, seed=1)  # fmt: skip
    assert frames.shape[:3] == (5, 32, 32) and frames.dtype == np.uint8 and frames.std() > 0


def test_cli_weights_needs_the_wan_backend(capsys):
    assert main(["generate", "a cat", "--weights", "fp8", "-o", "x.mp4"]) == 2
    assert "--weights need --backend wan" in capsys.readouterr().err
    assert main(["generate", "a cat", "--backend", "wan", "--weights", "fp4"]) == 2
    assert "invalid choice: 'fp4'" in capsys.readouterr().err
