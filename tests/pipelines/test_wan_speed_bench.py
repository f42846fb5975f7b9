"""bench/wan_speed.py's CPU path on its tiny config: it prints every table and its ratios are finite; the
FLOP formula gives the issue's 1.7e15 for one Wan2.1-T2V-14B forward at 480p x 81 frames."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "wan_speed.py"


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT), run_name="wan_speed")


def test_the_flop_count_of_a_14b_forward(bench):
    spec = bench["MODELS"]["14b"]()
    assert spec.tokens == 32760 and spec.latent == (21, 60, 104)
    flops = bench["forward_flops"](spec.dit, spec.tokens)
    assert 1.6e15 < flops < 1.75e15  # the "about 1.7e15"
    five = bench["MODELS"]["5b"]()
    assert five.tokens == 21 * 15 * 26  # 16x VAE, 2x2 patches


def test_cpu_tiny_run_prints_the_tables_with_finite_ratios(bench, capsys):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = bench["main"](
            ["--device", "cpu", "--models", "tiny", "--repeats", "1", "--cache-steps", "5", "--skip-compile"]
        )  # fmt: skip (compile vs eager: tests/models/test_compile.py)
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    runs = {r[1]: r for r in rows}
    assert {"diffusers eager (reference)", "ours eager", "ours, batched guidance (2 evaluations)",
            "ours + fp8 weights"} <= set(runs)  # fmt: skip
    for _, _, seconds, _, tflops, of_peak, vs in rows:
        assert all(math.isfinite(v) and v > 0 for v in (seconds, tflops, of_peak, vs))
    assert runs["diffusers eager (reference)"][-1] == 1.0
    assert "| tiny | ours eager |" in out and "matmul peak" in out
    for cache in ("none", "fbcache:0.05", "magcache:0.06", "teacache:0.1"):
        assert f"| tiny | {cache} |" in out
    magcache = next(line for line in out.splitlines() if "| magcache:0.06 |" in line).split("|")
    assert int(magcache[3]) + int(magcache[4]) == 10 and int(magcache[4]) > 0  # 5 batched steps, some skipped
    assert "fp8: 20 block Linears in float8_e4m3fn" in out  # 2 blocks x (4 self + 4 cross + 2 FFN)
    assert "4-step shot 32x32x5 end to end" in out and "frames (5, 32, 32, 3)" in out
