"""backends/registry.py: the one table the CLI, the server settings and /health read; one entry adds a
backend; unknown names and options are one-line errors naming the closest."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.test_render_conditioning import Sounding
from tests.server.conftest import app_client
from yingxi.backends.registry import (
    BackendSpec,
    backend_names,
    build_backend,
    build_door_backend,
    check_options,
    get_spec,
    register,
    unregister,
)
from yingxi.cli import main
from yingxi.errors import InputError
from yingxi.server.settings import ServerSettings


def register_sounding() -> BackendSpec:
    """A backend registered the way any new one is: one entry."""
    return register(BackendSpec(name="sounding", summary="a test camera with sound",
                                build=lambda model, options: Sounding(), makes_sound=True))  # fmt: skip


@pytest.fixture
def sounding():
    yield register_sounding()
    unregister("sounding")


def test_the_built_in_backends_and_their_specs():
    assert backend_names()[:2] == ("animatic", "wan")
    wan = get_spec("wan")
    assert wan.needs_model and "steps" in wan.options and "model" in wan.options
    assert get_spec(" Animatic ").name == "animatic" and get_spec("animatic").options == ()
    with pytest.raises(ValueError, match="already registered"):
        register(BackendSpec(name="wan", summary="again", build="x:y"))
    with pytest.raises(ValueError, match="unknown option"):
        BackendSpec(name="odd", summary="", build="x:y", options=("stepz",))


def test_unknown_backend_names_the_closest_in_python_cli_and_server(capsys):
    with pytest.raises(
        InputError, match='unknown backend "wann" \\(did you mean "wan"\\?\\); accepted: animatic, wan'
    ):
        get_spec("wann")
    assert main(["plan", "a kite", "--backend", "animatc"]) == 2
    assert capsys.readouterr().err == (
        'yingxi: error: --backend: unknown backend "animatc" (did you mean "animatic"?); accepted: animatic, wan\n'
    )
    with pytest.raises(InputError, match='did you mean "wan"'):
        ServerSettings(backend="wna")
    assert main(["serve", "--backend", "wna", "--data-dir", "unused"]) == 2
    assert 'unknown backend "wna" (did you mean "wan"?)' in capsys.readouterr().err


def test_options_a_backend_does_not_take_are_refused_naming_who_takes_them():
    with pytest.raises(InputError) as e:
        check_options(get_spec("animatic"), {"steps": 4, "guidance": None, "loras": []}, flags=True)
    assert str(e.value) == "--steps: --steps need --backend wan (the animatic takes none)"
    with pytest.raises(InputError, match='unknown dtype "bf61" \\(did you mean "bf16"'):
        check_options(get_spec("wan"), {"model": "m", "dtype": "bf61"})
    with pytest.raises(InputError, match="the wan backend needs a model") as e:
        build_backend("wan", {"steps": 2})
    assert e.value.field == "model"


def test_the_animatic_is_built_without_importing_torch():
    code = ("import sys; from yingxi.backends.registry import build_backend, build_door_backend;"
            "g = build_backend('animatic'); d = build_door_backend('animatic');"
            "print(g.name, d.name, 'torch' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["animatic", "animatic", "False"]


def test_one_entry_adds_a_backend_to_the_cli_and_the_server(sounding, capsys, tmp_path):
    gen = build_backend("sounding")
    assert gen.capabilities.audio and build_door_backend("sounding").name == "sounding"
    assert main(["plan", "Shot 1 (1s): a kite", "--backend", "sounding", "--json"]) == 0
    assert '"shots"' in capsys.readouterr().out
    assert main(["plan", "a", "--backend", "sounding", "--steps", "3"]) == 2
    assert "--steps need --backend wan (the sounding takes none)" in capsys.readouterr().err
    with app_client(tmp_path, backend="sounding") as client:
        health = client.get("/api/v1/health").json()
    assert health["backend"] == "sounding"
    names = [b["name"] for b in health["backends"]]
    assert names == ["animatic", "wan", "sounding"]
    assert health["backends"][2] == {"name": "sounding", "summary": "a test camera with sound",
                                     "needs_model": False, "makes_sound": True, "options": []}  # fmt: skip
    caps = health["capabilities"]
    assert caps["audio"] is True and caps["conditioning_kinds"] == ["control", "reference", "video"]


def test_health_reports_the_served_backend_s_capabilities(tmp_path):
    with app_client(tmp_path) as client:
        health = client.get("/api/v1/health").json()
    assert health["capabilities"]["name"] == "animatic" and health["capabilities"]["audio"] is False
    assert health["capabilities"]["conditioning_kinds"] == []


def test_a_backend_may_accept_its_own_values_of_a_shared_option():
    spec = register(BackendSpec(name="seq", summary="", build=lambda model, options: options,
                                options=("offload",), option_choices={"offload": ("none", "model", "sequential")}))  # fmt: skip
    try:
        assert build_backend("seq", {"offload": "sequential"}) == {"offload": "sequential"}
        with pytest.raises(InputError, match='unknown offload "blocks"'):
            build_backend("seq", {"offload": "blocks"})
    finally:
        unregister("seq")
    assert spec.name == "seq"
