"""Attention kernels and compiled blocks through WanPipeline, WanGenerator and the CLI on a tiny model:
compiled + step cache makes the frames eager + step cache makes, the choice is printed, bad choices are
refused before any weights load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yingxi.backends.wan import WanGenerator
from yingxi.cli import main
from yingxi.errors import InputError
from yingxi.models.attention import kernel_name
from yingxi.pipelines.wan import load_pipeline

# The latent (16, 2, 8, 12) of 5 frames at 96x64, as tests/models/test_compile.py compiles it: in one
# pytest process the graph compiled there is reused here (same block code, shapes, dtype and kernel).
SIZE = dict(width=96, height=64, num_frames=5)


def test_compiled_pipeline_with_a_step_cache_makes_the_eager_frames(tiny_wan):
    folder = tiny_wan("t2v")
    eager = load_pipeline(folder, cache="fbcache:0.2")
    compiled = load_pipeline(folder, cache="fbcache:0.2", compile=True)
    dit = compiled.components.transformer
    assert compiled.speed.compile_mode == "default" and dit.compile_stats.blocks == 2
    assert {kernel_name(b.attn1.attention_fn) for b in dit.blocks} == {"sdpa"}
    call = dict(prompt="a kite over the sea", num_inference_steps=4, guidance_scale=4.0, seed=3, **SIZE)
    want = eager(**call)
    got = compiled(**call)
    # float32 blocks within 1e-5 of eager (test_compile.py); through 4 steps, the decoder and uint8 rounding
    # a pixel may land one level apart
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert compiled.last_usage == eager.last_usage and eager.last_usage["skipped"] > 0
    before = dit.compile_stats.graphs
    compiled(**call)  # a second clip of the same size compiles nothing
    assert dit.compile_stats.graphs == before
    notes = compiled.speed.notes()
    assert notes[0] == "attention: sdpa (cross-attention: sdpa)"
    assert notes[1].startswith("compile: ") and "2 blocks" in notes[1] and "default" in notes[1]


def test_kernels_are_chosen_per_module_and_refused_before_weights_load(tiny_wan, monkeypatch):
    folder = tiny_wan("t2v")
    pipe = load_pipeline(folder, attention="sdpa-flash", cross_attention="math")
    dit = pipe.components.transformer
    assert [kernel_name(b.attn1.attention_fn) for b in dit.blocks] == ["sdpa-flash"] * 2
    assert [kernel_name(b.attn2.attention_fn) for b in dit.blocks] == ["sdpa-math"] * 2
    assert pipe.speed.notes() == ["attention: sdpa-flash (cross-attention: sdpa-math)"]
    reference = load_pipeline(folder, attention="sdpa-math")
    call = dict(prompt="a kite", num_inference_steps=2, guidance_scale=1.0, seed=1, **SIZE)
    assert np.abs(pipe(**call).astype(int) - reference(**call).astype(int)).max() <= 1

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded before the refusal")

    monkeypatch.setattr("yingxi.models.wan.loading.load_transformer_pair", no_weights)
    with pytest.raises(InputError, match="needs a CUDA device") as bad:
        load_pipeline(folder, cross_attention="sdpa-cudnn")
    assert bad.value.field == "cross-attention"
    with pytest.raises(InputError, match="CUDA graphs"):
        load_pipeline(folder, compile="cudagraphs")
    with pytest.raises(InputError, match='did you mean "sdpa-math"'):
        WanGenerator(folder, device="cpu", attention="sdpa-mth")


def test_cli_prints_the_kernels_and_compile_time(tiny_wan, tmp_path, capsys):
    base = ["--backend", "wan", "--model", str(tiny_wan("t2v")), "--size", "96x64", "--fps", "16",
            "--duration", "0.25", "--steps", "2", "--device", "cpu"]  # fmt: skip
    out = tmp_path / "kite.mp4"
    assert main(["generate", "A kite.", *base, "--compile", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "attention: sdpa (cross-attention: sdpa)" in printed and "compile: " in printed
    assert main(["generate", "A kite.", *base, "--attention", "flash", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("pip install flash-attn" in err or "needs a CUDA device" in err)
    assert main(["plan", "A kite.", *base, "--compile", "cudagraphs"]) == 2
    assert "need a CUDA device, not cpu" in capsys.readouterr().err
    assert main(["plan", "A kite.", *base, "--cross-attention", "sdpa-flsh"]) == 2
    assert 'did you mean "sdpa-flash"' in capsys.readouterr().err
    assert main(["generate", "A kite.", "--compile", "--attention", "sage", "-o", str(out)]) == 2
    assert "--attention, --compile need --backend wan" in capsys.readouterr().err
    assert main(["generate", "--compile", "Shot 1: a kite.", *base, "-o", str(out)]) == 2
    assert "write the prompt before --compile" in capsys.readouterr().err
    assert torch.get_num_threads() >= 1


def test_check_speed_refuses_cuda_graphs_with_offload_and_names_modes():
    from yingxi.pipelines.wan.speed import check_speed

    # judged from the arguments alone (no kernel probe for "auto" -> sdpa): no GPU needed to refuse
    assert check_speed("cuda", torch.bfloat16, compile="cudagraphs")[2] == "max-autotune"
    with pytest.raises(InputError, match="CUDA graphs replay fixed weight addresses") as bad:
        check_speed("cuda", torch.bfloat16, compile="cudagraphs", offload="blocks")
    assert bad.value.field == "compile"
    with pytest.raises(InputError, match='did you mean "max-autotune"'):
        check_speed("cpu", torch.float32, compile="max-autotun")
    assert check_speed("cpu", torch.float32, attention="math") == ("sdpa-math", "sdpa-math", None)
    assert check_speed("cpu", torch.bfloat16, cross_attention="sdpa-flash", compile=True) == (
        "sdpa",
        "sdpa-flash",
        "default",
    )
