"""`yingxi models list / pull` as a person runs them, with no network."""

import os
import subprocess
import sys

from tests.models.wan.tiny import save_tiny_wan


def yingxi(*args, env):
    return subprocess.run([sys.executable, "-m", "yingxi.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)  # fmt: skip


def test_models_list_shows_local_folders_and_pull_fails_clearly_offline(tmp_path):
    env = {
        **os.environ,
        "YINGXI_MODELS": str(tmp_path / "models"),
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "COLUMNS": "240",
    }  # fmt: skip (a table wide enough for whole paths)
    save_tiny_wan(tmp_path / "models" / "wan2.1-t2v-1.3b", "t2v")
    r = yingxi("models", "list", env=env)
    assert r.returncode == 0, r.stderr
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.count("│") > 3}
    assert len([n for n in rows if n.startswith("wan2")]) == 11  # 8 + 3 VACE
    assert str(tmp_path / "models" / "wan2.1-") in rows["wan2.1-t2v-1.3b"]  # present locally (path folded)
    assert rows["wan2.2-ti2v-5b"].rstrip("│ ").endswith("-")  # absent
    r = yingxi("models", "pull", "wan2.2-ti2v-5b", env=env)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.startswith("yingxi: error:") and "wan2.2-ti2v-5b" in r.stderr
    r = yingxi("models", "pull", "wan2.2-ti2v-5bb", env=env)
    assert r.returncode == 2 and 'did you mean "wan2.2-ti2v-5b"' in r.stderr
