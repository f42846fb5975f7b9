"""`yingxi serve --backend diffusers --model DIR`: the API process checks requests against the pipeline class
without loading weights; a worker builds the same backend on its device."""

from __future__ import annotations

import numpy as np
import pytest

from tests.backends.tiny_ltx2 import save_tiny_ltx2
from yingxi.backends.base import ClipRequest
from yingxi.errors import CapabilityError, InputError
from yingxi.server.settings import ServerSettings
from yingxi.server.worker import door_backend, make_backend


@pytest.fixture(scope="module")
def i2v(tmp_path_factory):
    return save_tiny_ltx2(tmp_path_factory.mktemp("ltx2") / "i2v", "i2v")


def test_the_door_checks_against_the_class_without_weights(i2v, tmp_path):
    settings = ServerSettings(data_dir=tmp_path, backend="diffusers", model=str(i2v))
    door = door_backend(settings)
    assert door.name == "diffusers:LTX2ImageToVideoPipeline"
    assert door.capabilities.conditionings == {"i2v", "audio"} and door.capabilities.size_multiple == 32
    with pytest.raises(CapabilityError, match="needs a first frame") as e:
        door.check(ClipRequest(prompt="a drum", width=32, height=32, num_frames=9, fps=24.0, seed=0))
    assert e.value.field == "first_frame"
    first = np.zeros((32, 32, 3), np.uint8)
    door.check(
        ClipRequest(prompt="a drum", width=32, height=32, num_frames=9, fps=24.0, seed=0, first_frame=first)
    )
    assert door._pipe is None  # nothing loaded in the API process
    worker = make_backend(settings, 0)
    assert worker.name == door.name and worker._pipe is None  # weights load on the first shot


def test_a_diffusers_server_needs_a_pipeline_folder(tmp_path):
    with pytest.raises(InputError, match="needs"):
        door_backend(ServerSettings(data_dir=tmp_path, backend="diffusers"))


def test_serve_flags_reach_the_diffusers_backend_options():
    """`serve --backend diffusers --device --dtype`: the settings carry them to the backend (not dropped)."""
    from yingxi.cli import build_parser
    from yingxi.cli_runtime import server_runtime_fields
    from yingxi.server.settings import ServerSettings

    argv = ["serve", "--backend", "diffusers", "--model", "/x", "--device", "cpu", "--dtype", "bf16"]
    fields = server_runtime_fields(build_parser().parse_args(argv))
    options = ServerSettings(backend="diffusers", model="/x", **fields).backend_options()
    assert options == {"model": "/x", "device": "cpu", "dtype": "bf16"}
