"""The official Ark SDK against our server: create (text, first frame, legacy flags), get, list, delete;
the video behind content.video_url decodes to what was asked for."""

from __future__ import annotations

import base64
import io
import textwrap
import wave

import httpx
import numpy as np
import pytest
from PIL import Image
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import ArkNotFoundError

from tests.server.conftest import assert_error, data_url, png_bytes, wait_for
from yingxi.media.image import fit_image
from yingxi.media.video import read_frames, read_video, write_mp4


def ark(live, key):
    return Ark(base_url=live.url + "/api/v3", api_key=key, max_retries=0)


def done(task) -> bool:
    return task.status in ("succeeded", "failed", "cancelled", "expired")


def test_ark_sdk_first_frame_task_round_trip(live, tmp_path):
    client = ark(live, live.alice)
    image = png_bytes(320, 180, (30, 120, 200))
    created = client.content_generation.tasks.create(
        model="doubao-seedance-1-0-pro",
        content=[
            {"type": "text", "text": "a lantern sways in the wind --dur 2 --rs 480p --rt 16:9 --seed 7"},
            {"type": "image_url", "image_url": {"url": data_url(image)}, "role": "first_frame"},
        ],
        return_last_frame=True,
        camera_fixed=True,
    )
    assert created.id.startswith("cgt-")
    task = wait_for(lambda: client.content_generation.tasks.get(task_id=created.id), done)
    assert task.status == "succeeded", task.error
    assert (task.model, task.duration, task.resolution, task.ratio, task.seed) == (
        "doubao-seedance-1-0-pro", 2, "480p", "16:9", 7)  # fmt: skip
    assert task.framespersecond == 24 and task.frames == 48
    assert task.usage.completion_tokens == 864 * 480 * 24 * 2 // 1024  # Seedance's token formula
    assert task.revised_prompt == "a lantern sways in the wind"  # the legacy flags are consumed
    extra = task.model_extra or {}
    assert extra.get("progress") == 100 and extra.get("attempts") == 1

    # The signed URL plays without any header (as a <video> tag would fetch it).
    video = httpx.get(task.content.video_url, timeout=30)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    path = tmp_path / "out.mp4"
    path.write_bytes(video.content)
    info = read_video(path)
    assert (info.width, info.height, info.num_frames) == (864, 480, 48)
    assert info.fps == pytest.approx(24.0)
    assert info.duration == pytest.approx(2.0)
    # camera_fixed: the first frame is the uploaded image fitted to the frame (H.264 loss: mean < 6/255).
    expected = fit_image(np.asarray(Image.open(io.BytesIO(image)).convert("RGB")), 864, 480)
    first = read_frames(path)[0]
    assert np.abs(first.astype(int) - expected.astype(int)).mean() < 6

    last = httpx.get(task.content.last_frame_url, timeout=30)
    assert last.status_code == 200
    assert Image.open(io.BytesIO(last.content)).size == (864, 480)

    # A tampered signature is refused; the tenant's key works without a signature; another tenant's does not.
    bad = task.content.video_url.replace("signature=", "signature=0")
    assert_error(httpx.get(bad), 403)
    file_path = f"/api/v3/files/{created.id}/video.mp4"
    with live.http(live.alice) as http:
        assert http.get(file_path).content == video.content
    with live.http(live.bob) as http:
        assert_error(http.get(file_path), 404)
    assert_error(httpx.get(live.url + file_path), 401)

    listed = client.content_generation.tasks.list(task_ids=[created.id], status="succeeded")
    assert listed.total == 1 and listed.items[0].id == created.id
    assert client.content_generation.tasks.list(task_ids=[created.id], status="failed").total == 0
    assert client.content_generation.tasks.list(model="no-such-model").total == 0

    client.content_generation.tasks.delete(task_id=created.id)
    with pytest.raises(ArkNotFoundError):
        client.content_generation.tasks.get(task_id=created.id)
    assert not (live.data_dir / "tasks" / created.id).exists()
    assert_error(httpx.get(task.content.video_url), 404)


def test_ark_multi_shot_prompt_grammar_and_progress(live, tmp_path):
    text = (
        "Ink-wash style, blue-grey palette.\n"
        "Shot 1 (1s, wide, slow pan left): Two men stand on the frozen lake.\n"
        "Shot 2 (1.5s, close-up, static): The older man lifts a thermos."
    )
    body = {
        "model": "seedance",
        "content": [{"type": "text", "text": text}],
        "ratio": "1:1",
        "resolution": "480p",
    }
    with live.http(live.alice) as http:
        created = http.post("/api/v3/contents/generations/tasks", json=body)
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        seen = []
        task = wait_for(lambda: seen.append(http.get(f"/api/v3/contents/generations/tasks/{task_id}").json())
                        or seen[-1], lambda t: t["status"] == "succeeded")  # fmt: skip
        assert task["duration"] == 3 and task["total_shots"] == 2 and task["ratio"] == "1:1"
        progress = [t["progress"] for t in seen]
        assert progress == sorted(progress) and progress[-1] == 100  # progress only goes up
        path = tmp_path / "film.mp4"
        path.write_bytes(httpx.get(task["content"]["video_url"]).content)
    info = read_video(path)
    assert (info.width, info.height) == (640, 640)
    assert info.num_frames == task["frames"] == 60  # 2.5 s at 24 fps


def test_ark_adaptive_ratio_follows_the_first_frame(live):
    portrait = png_bytes(90, 160)
    body = {"model": "m", "ratio": "adaptive", "resolution": "480p", "duration": 2,
            "content": [{"type": "text", "text": "a tall tower"},
                        {"type": "image_url", "image_url": {"url": data_url(portrait)}}]}  # fmt: skip
    with live.http(live.alice) as http:
        r = http.post("/api/v3/contents/generations/tasks", json=body)
        assert r.status_code == 200, r.text
        task = http.get(f"/api/v3/contents/generations/tasks/{r.json()['id']}").json()
        assert task["ratio"] == "9:16"  # a lone image without a role is the first frame
        http.delete(f"/api/v3/contents/generations/tasks/{task['id']}")


def test_tenants_see_only_their_own_tasks(live):
    body = {"model": "m", "content": [{"type": "text", "text": "a quiet street --dur 2 --rs 480p"}]}
    with live.http(live.alice) as alice, live.http(live.bob) as bob:
        task_id = alice.post("/api/v3/contents/generations/tasks", json=body).json()["id"]
        assert_error(bob.get(f"/api/v3/contents/generations/tasks/{task_id}"), 404)
        assert_error(bob.delete(f"/api/v3/contents/generations/tasks/{task_id}"), 404)
        assert task_id not in [t["id"] for t in bob.get("/api/v3/contents/generations/tasks").json()["items"]]
        assert alice.get(f"/api/v3/contents/generations/tasks/{task_id}").status_code == 200
        wait_for(lambda: alice.get(f"/api/v3/contents/generations/tasks/{task_id}").json(),
                 lambda t: t["status"] == "succeeded")  # fmt: skip


def wav_bytes(seconds: float = 1.0, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def test_audio_and_video_references_are_probed_and_audio_is_heard(live, tmp_path):
    clip = tmp_path / "ref.mp4"
    # 2 s: Seedance 2.0's least for reference videos in all
    write_mp4(clip, (np.full((64, 96, 3), 90, np.uint8) for _ in range(24)), fps=12, width=96, height=64)
    wrapped = "\n".join(textwrap.wrap(base64.b64encode(wav_bytes()).decode(), 76))  # MIME-style line breaks
    body = {"model": "m", "content": [
        {"type": "text", "text": "a bell rings --dur 2 --rs 480p --fps 12"},
        {"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64," + wrapped}, "role": "reference_audio"},
        {"type": "video_url", "video_url": {"url": data_url(clip.read_bytes(), "video/mp4")},
         "role": "reference_video"}]}  # fmt: skip
    with live.http(live.alice) as http:
        r = http.post("/api/v3/contents/generations/tasks", json=body)
        assert r.status_code == 200, r.text
        task = wait_for(lambda: http.get(f"/api/v3/contents/generations/tasks/{r.json()['id']}").json(),
                        lambda t: t["status"] in ("succeeded", "failed"))  # fmt: skip
        assert task["status"] == "succeeded", task.get("error")
        saved = sorted(p.name for p in (live.data_dir / "tasks" / task["id"] / "inputs").iterdir())
        assert saved == ["reference_audio_1.wav", "reference_video_1.mp4"]
        path = tmp_path / "out.mp4"
        path.write_bytes(httpx.get(task["content"]["video_url"]).content)
    info = read_video(path)
    assert info.has_audio and info.num_frames == 24 and info.audio_duration == pytest.approx(2.0, abs=0.1)
    wrong_role = {"type": "audio_url", "audio_url": {"url": data_url(wav_bytes())}, "role": "first_frame"}
    with live.http(live.alice) as http:
        body["content"][1:] = [wrong_role]
        err = assert_error(http.post("/api/v3/contents/generations/tasks", json=body), 400)
        assert "reference_audio" in err["message"]
