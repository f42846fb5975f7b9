"""`Runtime`: one validated, frozen config that travels CLI/server -> backend -> loader -> pipeline."""

from __future__ import annotations

import dataclasses

import pytest

from yingxi.errors import InputError
from yingxi.pipelines.runtime import Runtime, check_supported, runtime_with


def test_spellings_are_made_canonical_and_bad_values_name_their_field():
    r = Runtime(device="CUDA:1", dtype="bfloat16", offload=True, cache="MagCache", sampler="Euler")
    assert (r.device, r.dtype, r.offload, r.cache, r.sampler) == (
        "cuda:1",
        "bf16",
        "model",
        "magcache:0.06",
        "euler",
    )
    assert Runtime(cache="none").cache is None and Runtime(compile="off").compile is None
    for field, value, hint in [("device", "gpu", "cuda:N"), ("dtype", "bf61", 'did you mean "bf16"'),
                               ("weights", "fp4", "fp8"), ("offload", "blok", 'did you mean "blocks"'),
                               ("cache", "teacach", 'did you mean "teacache"'), ("sampler", "ddim", "unipc"),
                               ("vae_dtype", "int8", "fp32"), ("batched_guidance", "yes", "true")]:  # fmt: skip
        with pytest.raises(InputError, match=hint) as bad:
            Runtime(**{field: value})
        assert bad.value.field == field
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.device = "cpu"  # type: ignore[misc]


def test_loose_keywords_replace_fields_and_the_dict_round_trips():
    import torch

    base = Runtime(device="cpu", cache="teacache:0.2", attention="sdpa", cross_attention="sdpa")
    r = runtime_with(base, dtype=torch.float16, offload=None, cache=None, batched_guidance=True)
    assert (r.dtype, r.offload, r.cache, r.batched_guidance) == ("fp16", "none", "teacache:0.2", True)
    assert Runtime.from_dict(r.to_dict()) == r
    with pytest.raises(InputError, match='did you mean "offload"'):
        Runtime.from_dict({"offlaod": "model"})
    assert (r.torch_device, r.torch_dtype, Runtime(device="cpu").torch_dtype) == (
        torch.device("cpu"), torch.float16, torch.float32)  # fmt: skip
    assert not Runtime(device="cpu").guidance_batched and Runtime(device="cuda").guidance_batched
    assert r.summary() == "device=cpu, dtype=fp16, attention=sdpa, cross_attention=sdpa, " \
        "cache=teacache:0.2, batched_guidance=True"  # fmt: skip


def test_what_this_build_cannot_run_is_refused_before_loading():
    with pytest.raises(InputError, match='did you mean "sdpa"') as bad:
        check_supported(Runtime(cross_attention="spda"))
    assert bad.value.field == "cross_attention"
    with pytest.raises(InputError, match="compile mode") as bad:
        check_supported(Runtime(compile="fastest"))
    assert bad.value.field == "compile"
    from yingxi.pipelines.wan.speed import check_speed

    cpu = Runtime(device="cpu", attention="flash2")  # a kernel this card cannot run: refused at the check
    with pytest.raises(InputError, match="flash"):
        check_speed(cpu.torch_device, cpu.torch_dtype, attention=cpu.attention)
    check_supported(Runtime(parallel="ulysses=2"))  # a plan this build parses
    with pytest.raises(InputError, match="ulysses"):
        check_supported(Runtime(parallel="ulysess=2"))


def test_the_pipeline_runs_as_its_runtime_says(tiny_wan):
    """Device, offload, cache, batched guidance and the cross-attention kernel all arrive from one object."""
    from yingxi.backends.wan import WanGenerator
    from yingxi.models.attention import kernel_name

    runtime = Runtime(device="cpu", cache="fbcache", batched_guidance=True,
                      cross_attention="sdpa", sampler="euler")  # fmt: skip
    gen = WanGenerator(str(tiny_wan("t2v")), runtime=runtime)
    pipe = gen.pipeline
    assert pipe.runtime == runtime and gen.runtime == runtime
    assert (str(pipe.cache), pipe.batched_guidance, pipe.sampler, pipe.device.type) == (
        "fbcache:0.05", True, "euler", "cpu")  # fmt: skip
    block = pipe.components.transformer.blocks[0]
    assert kernel_name(block.attn2.attention_fn) == "sdpa" and pipe.speed.cross_attention == "sdpa"


def test_serve_and_worker_flags_become_the_settings_runtime(tiny_wan, tmp_path):
    from yingxi.cli import build_parser
    from yingxi.cli_runtime import server_runtime_fields
    from yingxi.server.settings import ServerSettings

    lora = tmp_path / "l.safetensors"
    lora.write_bytes(b"")  # only its existence is checked here
    for command in ("serve", "worker"):
        args = build_parser().parse_args([command, "--backend", "wan", "--model", str(tiny_wan("t2v")),
                                          "--dtype", "bf16", "--weights", "fp8", "--offload", "blocks",
                                          "--cache", "teacache:0.2", "--lora", f"{lora}:0.5",
                                          "--preset", "Lightning", "--no-request-cache",
                                          "--cross-attention", "SDPA"])  # fmt: skip
        fields = server_runtime_fields(args)
        settings = ServerSettings(backend="wan", model=args.model, **fields)
        assert settings.runtime == Runtime(
            dtype="bf16", weights="fp8", offload="blocks", cache="teacache:0.2", cross_attention="sdpa"
        )
        assert (settings.loras, settings.preset, settings.request_cache) == (
            ((str(lora), 0.5),),
            "lightning",
            False,
        )
        assert ServerSettings.from_dict(settings.to_dict()) == settings
    args = build_parser().parse_args(["worker", "--cache", "magcache", "--compile"])
    with pytest.raises(InputError, match="--cache, --compile need --backend wan"):
        server_runtime_fields(args)
    args = build_parser().parse_args(["serve", "--backend", "wan", "--cache", "magcach"])
    with pytest.raises(InputError, match='did you mean "magcache"') as bad:
        server_runtime_fields(args)
    assert bad.value.field == "--cache"
