"""Model hub: where weights are looked for, and a clear error when they cannot be downloaded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest

from yingxi.errors import ModelNotFoundError
from yingxi.models import hub
from yingxi.models.wan.config import VARIANTS


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty home, HF cache and $YINGXI_MODELS, so the machine's own caches do not leak in."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("YINGXI_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def make_folder(path):
    (path / "transformer").mkdir(parents=True)
    (path / "transformer" / "config.json").write_text("{}")
    (path / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    return path


def test_list_shows_a_folder_in_yingxi_models_as_present(isolated):
    sys.path.insert(0, str(Path(__file__).resolve().parent / "wan"))
    from tiny import save_tiny_wan

    folder = save_tiny_wan(isolated / "models" / "wan2.1-t2v-1.3b", "t2v")
    rows = {variant.name: (present, path) for variant, present, path in hub.list_models()}
    assert set(rows) == set(VARIANTS)
    assert rows["wan2.1-t2v-1.3b"] == (True, folder)
    assert rows["wan2.1-t2v-14b"] == (False, None)
    assert hub.local_path("wan2.1-t2v-1.3b") == folder
    assert hub.local_path(VARIANTS["wan2.2-ti2v-5b"]) is None


def test_yingxi_cache_is_searched_and_half_folders_are_not_models(isolated, monkeypatch):
    monkeypatch.delenv("YINGXI_MODELS")
    folder = make_folder(isolated / "home" / ".cache" / "yingxi" / "models" / "wan2.2-ti2v-5b")
    assert hub.local_path("wan2.2-ti2v-5b") == folder
    (isolated / "home" / ".cache" / "yingxi" / "models" / "wan2.1-t2v-14b").mkdir()  # empty: not a model
    assert hub.local_path("wan2.1-t2v-14b") is None
    assert hub.models_dir() == isolated / "home" / ".cache" / "yingxi" / "models"


def test_hf_cache_snapshot_is_found(isolated):
    repo = VARIANTS["wan2.1-t2v-1.3b"].repo_id
    storage = isolated / "hf" / ("models--" + repo.replace("/", "--"))
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text("abc123")
    snapshot = make_folder(storage / "snapshots" / "abc123")
    assert hub.local_path("wan2.1-t2v-1.3b") == snapshot


def test_pull_offline_says_it_failed_and_where_to_put_files(isolated, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        hub.pull("wan2.1-t2v-1.3b")
    message = str(info.value)
    assert "could not download wan2.1-t2v-1.3b" in message
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in message
    assert "HF_HUB_OFFLINE" in message
    assert str(isolated / "models" / "wan2.1-t2v-1.3b") in message
    assert "yingxi models pull wan2.1-t2v-1.3b" in message
    assert not (isolated / "models" / "wan2.1-t2v-1.3b" / "model_index.json").exists()


def test_pull_unknown_name_suggests_the_closest(isolated):
    with pytest.raises(Exception, match='did you mean "wan2.1-t2v-1.3b"'):
        hub.pull("wan2.1-t2v-1.3")


def test_hf_cache_snapshot_of_the_original_layout_repo_is_found(isolated):
    variant = VARIANTS["wan2.1-flf2v-14b-720p"]  # the one repo spelt "-diffusers"
    assert hub.original_repo_id(variant) == "Wan-AI/Wan2.1-FLF2V-14B-720P"
    storage = isolated / "hf" / "models--Wan-AI--Wan2.1-FLF2V-14B-720P"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text("def456")
    snapshot = storage / "snapshots" / "def456"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "flf2v", "dim": 5120, "num_heads": 40}))
    assert hub.local_path(variant) is None  # no VAE: a half download is not a model
    (snapshot / "Wan2.1_VAE.pth").write_bytes(b"")
    assert hub.local_path(variant) == snapshot
