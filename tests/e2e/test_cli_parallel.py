"""`yingxi generate --gpus 2` on a tiny Wan model: two gloo ranks (CPU test mode) write the one MP4 that
one process writes, frame for frame; rank 0 alone prints the summary, naming the plan and the ranks."""

import subprocess
import sys

import pytest

from tests.e2e.helpers import assert_same_encode, decode
from tests.models.wan.tiny import save_tiny_wan

FILM = "Shot 1 (1s, wide): A kite over the sea."


@pytest.fixture(scope="module")
def t2v(tmp_path_factory):
    return save_tiny_wan(tmp_path_factory.mktemp("wan") / "t2v", "t2v")


def _generate(model, out, *extra):
    return subprocess.run([sys.executable, "-m", "yingxi.cli", "generate", "--backend", "wan", "--model", str(model),
                           FILM, "--size", "48x48", "--steps", "2", "--seed", "7", "-o", str(out), *extra],
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_gpus_2_writes_the_frames_of_one_process(t2v, tmp_path):
    one = _generate(t2v, tmp_path / "one.mp4", "--device", "cpu")
    two = _generate(t2v, tmp_path / "two.mp4", "--device", "cpu", "--gpus", "2")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "CPU test mode: 2 gloo processes" in two.stderr
    assert (
        "parallel: ulysses=2,ring=1,cfg=1 across 2 ranks (gloo, CPU test mode); transformer ran on ranks 0, 1"
        in two.stdout
    )
    assert two.stdout.count("output:") == 1  # rank 0 alone prints the summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.mp4", "two.mp4"]  # one file, no rank's temp
    frames_one, *_ = decode(tmp_path / "one.mp4")
    frames_two, *_ = decode(tmp_path / "two.mp4")
    assert frames_one.std() > 5
    assert_same_encode(frames_two, frames_one)  # the same frames, through two runs of libx264
    ev = [line for line in one.stdout.splitlines() if line.startswith("transformer evaluations")]
    assert ev and ev[0] in two.stdout  # the split counts both branches, as one process does


def test_gpus_2_with_a_step_cache_skips_what_one_process_skips(t2v, tmp_path):
    """--cache runs in front of the shard: the same skipped evaluations and the same film as one process."""
    cached = ("--device", "cpu", "--steps", "8", "--cache", "magcache:0.5")
    one = _generate(t2v, tmp_path / "one.mp4", *cached)
    two = _generate(t2v, tmp_path / "two.mp4", *cached, "--gpus", "2")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    counts = [
        line for line in one.stdout.splitlines() if line.startswith(("transformer evaluations", "skipped"))
    ]
    assert len(counts) == 2 and "skipped by the step cache: 10" in counts[1], one.stdout  # 10 of 16 skipped
    assert all(line in two.stdout.splitlines() for line in counts), two.stdout
    assert_same_encode(decode(tmp_path / "two.mp4")[0], decode(tmp_path / "one.mp4")[0])


def test_a_plan_that_does_not_multiply_to_the_ranks_is_one_line(t2v, tmp_path):
    r = _generate(t2v, tmp_path / "x.mp4", "--gpus", "2", "--parallel", "ulysses=2,cfg=2")
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "yingxi: error: --gpus: ulysses=2 x ring=1 x cfg=2 multiplies to 4, but 2 ranks run; "
        "the degrees must multiply to the world size"
    )
    assert not (tmp_path / "x.mp4").exists()


def test_worker_parallel_owns_the_plan_s_ranks_not_gpus_workers(tmp_path):
    r = subprocess.run([sys.executable, "-m", "yingxi.cli", "worker", "--backend", "wan", "--model", "x",
                        "--data-dir", str(tmp_path), "--gpus", "2", "--parallel", "ulysses=2"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2
    assert (
        "--gpus: --gpus starts independent workers; with --parallel one worker owns all the plan's ranks"
        in r.stderr
    )
