"""load_pipeline: names, repo ids and folders; what a folder is recognised as; clear errors when absent."""

from __future__ import annotations

import shutil

import huggingface_hub.constants
import pytest

import yingxi
from yingxi.errors import InputError, ModelNotFoundError
from yingxi.pipelines.wan import WanPipeline
from yingxi.pipelines.wan.load import variant_for_folder


@pytest.fixture
def no_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("YINGXI_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


@pytest.mark.parametrize(
    "kind, tasks, two_experts, clip, multiple",
    [
        ("t2v", ("t2v",), False, False, 16),
        ("i2v", ("i2v",), False, True, 16),
        ("flf2v", ("flf2v",), False, True, 16),
        ("ti2v", ("ti2v",), False, False, 32),
        ("a14b-t2v", ("t2v",), True, False, 16),
        ("a14b-i2v", ("i2v",), True, False, 16),
    ],
)
def test_folder_is_recognised_and_built(tiny_wan, kind, tasks, two_experts, clip, multiple):
    folder = tiny_wan(kind)
    variant = variant_for_folder(folder)
    assert variant.tasks == tasks and variant.two_experts == two_experts
    assert variant.needs_image_encoder == clip
    assert variant.shift == 3.0  # the folder's scheduler_config.json flow_shift, not the published default
    assert variant.dit.num_layers == 2  # the folder's own transformer config
    pipe = yingxi.load_pipeline(folder)
    assert isinstance(pipe, WanPipeline) and pipe.size_multiple == multiple
    assert (pipe.components.transformer_2 is not None) == two_experts
    assert (pipe.components.image_encoder is not None) == clip
    assert pipe.components.text_encoder is not None


def test_missing_weights_say_where_to_put_them(no_caches):
    with pytest.raises(ModelNotFoundError) as info:
        yingxi.load_pipeline("wan2.1-t2v-1.3b")
    message = str(info.value)
    assert "wan2.1-t2v-1.3b are not on this machine" in message
    assert str(no_caches / "models" / "wan2.1-t2v-1.3b") in message
    assert "yingxi models pull wan2.1-t2v-1.3b" in message


def test_unknown_names_and_missing_folders(no_caches):
    with pytest.raises(InputError, match='did you mean "wan2.2-ti2v-5b"'):
        yingxi.load_pipeline("wan2.2-ti2v-5")
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        yingxi.load_pipeline(str(no_caches / "nowhere" / "model"))


def test_name_and_repo_id_find_a_folder_in_yingxi_models(no_caches, tiny_wan):
    shutil.copytree(tiny_wan("t2v"), no_caches / "models" / "wan2.1-t2v-1.3b")
    for name in ("wan2.1-t2v-1.3b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"):
        pipe = yingxi.load_pipeline(name)
        assert pipe.variant.name == "wan2.1-t2v-1.3b"  # the published defaults (steps, shift, fps)
        assert pipe.components.transformer.config.num_layers == 2  # the weights on disk
