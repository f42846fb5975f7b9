"""The official OpenAI SDK against /v1/videos, and the native film API (JSON, YAML, multipart)."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import openai
import pytest
import yaml
from PIL import Image

from tests.server.conftest import assert_error, data_url, png_bytes, wait_for
from yingxi.media.video import read_frames, read_video

# The SDK marks its videos API deprecated; the calls are what we test.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def oa(live, key):
    return openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0)


def test_openai_sdk_videos_round_trip(live, tmp_path):
    client = oa(live, live.alice)
    image = png_bytes(200, 200, (10, 200, 60))
    video = client.videos.create(
        prompt="a green kite over a hill", model="sora-2", seconds="2", size="864x480",
        input_reference=("kite.png", image, "image/png"),
    )  # fmt: skip
    assert video.object == "video" and video.status in ("queued", "in_progress")
    assert video.size == "864x480" and video.seconds == "2" and video.model == "sora-2"
    final = wait_for(lambda: client.videos.retrieve(video.id), lambda v: v.status in ("completed", "failed"))
    assert final.status == "completed" and final.progress == 100 and final.error is None
    assert final.completed_at >= final.created_at and final.expires_at > final.completed_at

    content = client.videos.download_content(video.id)
    path = tmp_path / "v.mp4"
    path.write_bytes(content.read())
    info = read_video(path)
    assert (info.width, info.height, info.num_frames) == (864, 480, 48)
    thumb = client.videos.download_content(video.id, variant="thumbnail")
    assert Image.open(io.BytesIO(thumb.read())).size == (864, 480)
    # The thumbnail is the film's last frame.
    last = read_frames(path)[-1].astype(int)
    assert np.abs(np.asarray(Image.open(io.BytesIO(thumb.read())).convert("RGB"), int) - last).mean() < 6

    second = client.videos.create(prompt="rain on a window", seconds=4, size="480x864")
    assert second.size == "480x864" and second.seconds == "4"
    page = client.videos.list(limit=1, order="desc")
    assert [v.id for v in page.data] == [second.id] and page.has_more
    ids = [v.id for v in client.videos.list(limit=1, order="desc").iter_pages().__next__().data]
    assert ids == [second.id]
    all_ids = [v.id for v in client.videos.list(limit=1, order="asc")]  # auto-paging follows last_id
    assert all_ids.index(video.id) < all_ids.index(second.id)

    deleted = client.videos.delete(second.id)
    assert deleted.deleted and deleted.id == second.id
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(second.id)
    with pytest.raises(openai.AuthenticationError):
        oa(live, "yx-wrong").videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        oa(live, live.bob).videos.download_content(video.id)


def test_openai_json_body_with_image_url(live):
    body = {"prompt": "a lighthouse", "seconds": "2", "size": "1280x720",
            "input_reference": {"image_url": data_url(png_bytes())}}  # fmt: skip
    with live.http(live.alice) as http:
        r = http.post("/v1/videos", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["size"] == "1280x720"
        http.delete(f"/v1/videos/{r.json()['id']}")
        assert_error(http.post("/v1/videos", json={**body, "size": "big"}), 400)
        assert_error(http.post("/v1/videos", json={**body, "seconds": "forever"}), 400)


SCRIPT = {
    "title": "Ice",
    "resolution": "480p",
    "ratio": "4:3",
    "fps": 12,
    "characters": {"JIA": {"description": "an old man", "image": "jia.png"}},
    "shots": [
        {"prompt": "JIA stands on the ice.", "duration": 1, "framing": "wide", "characters": ["JIA"]},
        {"prompt": "He smiles.", "duration": 1.5, "transition": "crossfade", "first_frame": "close.png"},
    ],
}


def test_native_film_multipart_script_with_uploads(live, tmp_path):
    files = {"jia": ("jia.png", png_bytes(64, 64), "image/png"),
             "close": ("close.png", png_bytes(64, 48, (250, 250, 0)), "image/png")}  # fmt: skip
    with live.http(live.alice) as http:
        r = http.post("/api/v1/films", data={"script": yaml.safe_dump(SCRIPT)}, files=files)
        assert r.status_code == 200, r.text
        film = r.json()
        assert film["object"] == "film" and film["film"]["shots"] == 2 and film["film"]["duration"] == 2.5
        done = wait_for(lambda: http.get(f"/api/v1/films/{film['id']}").json(), lambda f: f["status"] != "queued"
                        and f["status"] != "running")  # fmt: skip
        assert done["status"] == "succeeded", done["error"]
        path = tmp_path / "film.mp4"
        path.write_bytes(httpx.get(done["video_url"]).content)
    info = read_video(path)
    assert (info.width, info.height, info.fps, info.num_frames) == (736, 544, 12.0, 30)
    saved = sorted(p.name for p in (live.data_dir / "tasks" / film["id"] / "inputs").iterdir())
    assert saved == ["file_1.png", "file_2.png"]  # our names, never the client's


def test_native_film_json_and_yaml_bodies(live):
    script = {**SCRIPT, "characters": {"JIA": "an old man"}, "shots": [SCRIPT["shots"][0]]}
    with live.http(live.alice) as http:
        r1 = http.post("/api/v1/films", json=script)
        r2 = http.post(
            "/api/v1/films", content=yaml.safe_dump(script), headers={"content-type": "application/yaml"}
        )
        for r in (r1, r2):
            assert r.status_code == 200, r.text
            assert r.json()["film"]["resolution"] == "480p"
            http.delete(f"/api/v1/films/{r.json()['id']}")
        # Files the script names must come with the request: never read from the server's disk.
        for ref in ("../../../../etc/passwd", "/etc/passwd", str(live.data_dir / "jobs.db")):
            bad = {**script, "style_image": ref}
            err = assert_error(http.post("/api/v1/films", json=bad), 400)
            assert err["param"] == "style_image" and "no uploaded file part" in err["message"]
        err = assert_error(http.post("/api/v1/films", json={**script, "shots": [{"prompt": "x", "duration": 99}]}),
                           400)  # fmt: skip
        assert "shot 1" in err["message"] and "duration" in err["message"]
        err = assert_error(http.post("/api/v1/films", content=b"shots: [\n  - {", headers={
            "content-type": "application/yaml"}), 400)  # fmt: skip
        assert "YAML" in err["message"]
        assert json.loads(http.get("/api/v1/films").text)["object"] == "list"


def test_native_film_script_shot_audio_and_reference_video_are_uploads(live, tmp_path):
    """A script's per-shot `audio` and `reference_video` name uploads, as its images do: saved under our
    names, the audio the picture should follow laid as the shot's sound by a backend that cannot follow it
    (the animatic), and heard there in the film."""
    from tests.server.test_seedance import mp4_bytes, wav_bytes
    from yingxi.media.video import read_audio

    script = {"resolution": "480p", "fps": 12, "shots": [
        {"prompt": "Ice.", "duration": 1},
        {"prompt": "She sings.", "duration": 1, "audio": {"file": "song.wav", "use": "follow"},
         "reference_video": {"file": "moves.mp4", "use": "control"}},
    ]}  # fmt: skip
    files = {"song": ("song.wav", wav_bytes(1.0, 1000.0), "audio/wav"),
             "moves": ("moves.mp4", mp4_bytes(tmp_path, 2.0), "video/mp4")}  # fmt: skip
    with live.http(live.alice) as http:
        r = http.post("/api/v1/films", data={"script": yaml.safe_dump(script)}, files=files)
        assert r.status_code == 200, r.text
        film = r.json()
        done = wait_for(lambda: http.get(f"/api/v1/films/{film['id']}").json(),
                        lambda f: f["status"] not in ("queued", "running"))  # fmt: skip
        assert done["status"] == "succeeded", done["error"]
        path = tmp_path / "film.mp4"
        path.write_bytes(httpx.get(done["video_url"]).content)
        missing = {**script, "shots": [{"prompt": "x", "audio": "nope.wav"}]}
        err = assert_error(http.post("/api/v1/films", json=missing), 400)
        assert err["param"] == "shots[1].audio" and "no uploaded file part" in err["message"]
        on_disk = {**script, "shots": [{"prompt": "x", "reference_video": {"file": "/etc/passwd"}}]}
        err = assert_error(http.post("/api/v1/films", json=on_disk), 400)  # never a file of the server's
        assert err["param"] == "shots[1].reference_video.file" and "no uploaded file part" in err["message"]
    saved = sorted(p.name for p in (live.data_dir / "tasks" / film["id"] / "inputs").iterdir())
    assert saved == ["file_1.mp4", "file_2.wav"]  # reference video first, as the shot lists them
    sound = read_audio(path, 48000).mean(axis=1)  # (S,)
    shot2 = sound[48000 + 4800 : 2 * 48000 - 4800]
    spectrum = np.abs(np.fft.rfft(shot2))
    assert abs(np.argmax(spectrum) * 48000 / len(shot2) - 1000.0) < 20  # the song, under shot 2
    assert np.sqrt(np.mean(sound[4800:43200] ** 2)) < 0.01  # and not under shot 1
