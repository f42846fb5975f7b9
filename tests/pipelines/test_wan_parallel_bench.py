"""bench/wan_parallel.py on 2 gloo ranks and the tiny config: every plan's row is there, its output equals one
rank's within float32 tolerance, and the bytes it counts are what each plan must send."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# Bytes a rank sends per forward of the tiny model (8 tokens, 2 heads of 16, width 32, 2 layers, float32), 2 ranks:
# Ulysses: per layer 4 all-to-alls (q, k, v, out) of its 4 tokens x 2 heads x 16, half of each leaves = 4 x 256;
# Ring: per layer its k and v (4 tokens x 32) to the next rank once = 2 x 512; both then gather the tokens
# (4 x 32 x 4 bytes = 512). cfg=2: no sequence traffic; the gathered half batch (8 x 32 x 4 = 1024).
SENT = {"ulysses=2,ring=1,cfg=1": 2 * 4 * 256 + 512, "ulysses=1,ring=2,cfg=1": 2 * 2 * 512 + 512,
        "ulysses=1,ring=1,cfg=2": 1024}  # fmt: skip


def rows(out: str) -> dict[str, list[str]]:
    table = [
        line.strip("|").split("|") for line in out.splitlines() if line.startswith("| ") and "---" not in line
    ]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in table[1:]}


def test_two_gloo_ranks_run_every_plan_and_match_one_rank():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "wan_parallel.py"), "--device", "cpu", "--ranks", "2",
                        "--model", "tiny", "--repeats", "1"], capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    table = rows(r.stdout)
    assert set(table) == {"one rank (reference)", "ulysses=2,ring=1,cfg=1", "ulysses=1,ring=2,cfg=1",
                          "ulysses=1,ring=1,cfg=2"}, r.stdout  # fmt: skip
    for plan in ("ulysses=2,ring=1,cfg=1", "ulysses=1,ring=2,cfg=1", "ulysses=1,ring=1,cfg=2"):
        ranks, batch, seconds, speedup, _, diff, mib, tokens = table[plan]
        assert ranks == "2" and float(seconds) > 0 and speedup.endswith("x")
        assert float(diff) <= 1e-5, (plan, diff)  # the same function as one rank, float32
        assert float(mib) * 2**20 == pytest.approx(SENT[plan], rel=1e-3), (plan, mib)  # printed to 4 digits
        assert int(tokens) == (8 if "cfg=2" in plan else 4)
        assert batch == ("2" if "cfg=2" in plan else "1")
