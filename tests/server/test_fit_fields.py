"""`fit` in the APIs' task bodies (issue 8, item 11): the Ark task, the OpenAI video and the film script all
reach the Film; a word that is not a fit is a 400 naming the closest. Direct calls: no server needed."""

from __future__ import annotations

import pytest

from yingxi.server import ark, videos
from yingxi.server.common import ApiError
from yingxi.server.inputs import Inputs, build_film
from yingxi.server.scripts import script_request
from yingxi.server.settings import ServerSettings


@pytest.fixture
def settings(tmp_path):
    return ServerSettings(data_dir=tmp_path / "data")


def test_ark_task_fit(tmp_path, settings):
    body = ark.CreateTask(model="m", content=[{"type": "text", "text": "a lantern"}], fit="blur")
    request = ark.build_request(body, {}, settings, Inputs(folder=tmp_path / "inputs"))
    assert build_film(request, tmp_path).fit == "blur"
    plain = ark.CreateTask(model="m", content=[{"type": "text", "text": "a lantern"}])
    assert (
        build_film(ark.build_request(plain, {}, settings, Inputs(folder=tmp_path)), tmp_path).fit == "cover"
    )


def test_openai_video_fit(tmp_path, settings):
    body = videos.CreateVideo(prompt="a lantern", fit="contain")
    request = videos.build_request(body, {}, settings, Inputs(folder=tmp_path / "inputs"))
    assert build_film(request, tmp_path).fit == "contain"


def test_a_bad_fit_is_a_400_naming_the_closest(tmp_path, settings):
    body = ark.CreateTask(model="m", content=[{"type": "text", "text": "a lantern"}], fit="contian")
    with pytest.raises(ApiError) as e:
        ark.build_request(body, {}, settings, Inputs(folder=tmp_path))
    assert e.value.status == 400 and e.value.param == "fit" and '"contain"' in str(e.value.message)


def test_film_script_fit_compose_focus(tmp_path, settings):
    script = {"fit": "blur", "shots": [{"prompt": "two friends", "compose": "two-shot", "focus": [0.3, 0.4]}]}
    request = script_request(script, Inputs(folder=tmp_path / "inputs"), {}, settings)
    film = build_film(request, tmp_path)
    assert film.fit == "blur" and film.shots[0].compose == "two-shot" and film.shots[0].focus == (0.3, 0.4)
