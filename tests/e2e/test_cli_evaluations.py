"""The evaluation counts of the issue's two shots in the `generate` summary, through the real CLI on a tiny
Wan model: a 40-step guided shot with batched guidance + MagCache, and a `--preset lightning` shot."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from tests.models.wan.tiny import save_tiny_wan, tiny_dit_config
from yingxi.cli import main
from yingxi.pipelines.wan.cache import CacheSpec, magcache_plan
from yingxi.pipelines.wan.cache_tables import table_key

BASE = ["--backend", "wan", "--size", "32x32", "--fps", "16", "--duration", "0.25", "--device", "cpu"]


@pytest.fixture(scope="module")
def t2v(tmp_path_factory):
    return str(save_tiny_wan(tmp_path_factory.mktemp("wan") / "t2v", "t2v"))


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread beats two shared cores
    yield
    torch.set_num_threads(before)


def _summary(out: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def test_40_step_guided_shot_with_batched_guidance_and_magcache(t2v, tmp_path, capsys):
    args = [*BASE, "--model", t2v, "--steps", "40", "--guidance", "5", "--cache", "magcache",
            "--batched-guidance", "on"]  # fmt: skip
    # MagCache skips a batched pair on the cond ratios (both of its evaluations), so the count is known
    # from the published table (a 32-wide T2V model reads Wan2.1-T2V-1.3B's ratios)
    cfg = tiny_dit_config("t2v")
    table = table_key(cfg["num_attention_heads"] * cfg["attention_head_dim"], cfg["in_channels"], 8)
    assert table == "t2v-1.3B"
    skipped = 2 * len(magcache_plan(CacheSpec("magcache", 0.06), table, 40, "cond"))
    assert skipped > 0
    assert main(["plan", "A kite.", *args, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["shots"]
    assert (row["evaluations"], row["skipped"]) == (80, skipped)  # planned before any weights load
    assert main(["generate", "A kite.", *args, "-o", str(tmp_path / "kite.mp4")]) == 0
    s = _summary(capsys.readouterr().out)
    assert s["transformer evaluations"] == f"{80 - skipped} (per shot: {80 - skipped})"
    assert s["skipped by the step cache"] == f"{skipped} (per shot: {skipped})"
    assert "batched_guidance=True" in s["runtime"] and "cache=magcache:0.06" in s["runtime"]
    assert (tmp_path / "kite.mp4").stat().st_size > 0


def test_preset_lightning_shot_costs_four_evaluations(t2v, tmp_path, capsys):
    lora = tmp_path / "lightning.safetensors"  # a distillation LoRA stand-in, in Kohya's key format
    g = torch.Generator().manual_seed(1)
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.randn(2, 32, generator=g),
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.randn(32, 2, generator=g)},
              str(lora))  # fmt: skip
    args = [*BASE, "--model", t2v, "--preset", "lightning", "--lora", str(lora)]
    assert main(["generate", "A kite.", *args, "-o", str(tmp_path / "fast.mp4")]) == 0
    s = _summary(capsys.readouterr().out)
    assert s["transformer evaluations"] == "4 (per shot: 4)"  # 4 steps, guidance 1: one pass a step
    assert "skipped by the step cache" not in s
    args += ["--cache", "fbcache:0.9"]  # a loose threshold on 4 steps: some are reused, counted apart
    assert main(["generate", "A kite.", *args, "-o", str(tmp_path / "fast2.mp4")]) == 0
    s = _summary(capsys.readouterr().out)
    ran, skipped = (
        int(s["transformer evaluations"].split()[0]),
        int(s["skipped by the step cache"].split()[0]),
    )
    assert ran + skipped == 4 and skipped > 0


def test_bad_runtime_flags_are_one_line_naming_the_flag(t2v, tmp_path, capsys):
    out = str(tmp_path / "x.mp4")
    assert main(["generate", "A kite.", *BASE, "--model", t2v, "--cache", "magcach", "-o", out]) == 2
    assert 'did you mean "magcache"' in capsys.readouterr().err
    assert main(["generate", "A kite.", *BASE[:-2], "--device", "gpu", "--model", t2v, "-o", out]) == 2
    err = capsys.readouterr().err
    assert "--device" in err and err.count("\n") == 1
    assert main(["generate", "A kite.", "--batched-guidance", "on", "-o", out]) == 2  # the animatic
    assert "--batched-guidance need --backend wan" in capsys.readouterr().err
