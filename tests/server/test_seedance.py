"""Seedance 2.0 through the official Ark SDK against the real server: every limit of the content items is a
400 naming the item and the rule; @video/@audio mentions resolve (a missing one names the closest); each
request field round-trips (frames, seed, ratio "adaptive" from a reference video, service_tier,
execution_expires_after, generate_audio, watermark, duration -1); a draft re-runs at full quality from its
id; usage tokens are Seedance's exact count."""

from __future__ import annotations

import io
import wave

import httpx
import numpy as np
import pytest
from volcenginesdkarkruntime import Ark
from volcenginesdkarkruntime._exceptions import ArkBadRequestError

from tests.server.conftest import data_url, png_bytes, wait_for
from yingxi.media.video import read_audio, read_frames, read_video, write_mp4

FINISHED = ("succeeded", "failed", "cancelled", "expired")
RATE = 48_000


def wav_bytes(seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(seconds * 8000)) / 8000
    pcm = np.round(0.4 * np.sin(2 * np.pi * hz * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def mp4_bytes(tmp_path, seconds: float, width: int = 32, height: int = 32, fps: int = 4) -> bytes:
    path = tmp_path / f"clip-{seconds}-{width}x{height}.mp4"
    write_mp4(path, (np.full((height, width, 3), 100, np.uint8) for _ in range(round(seconds * fps))), fps=fps,
              width=width, height=height)  # fmt: skip
    return path.read_bytes()


def image(role: str = "reference_image") -> dict:
    return {"type": "image_url", "image_url": {"url": data_url(png_bytes(64, 64))}, "role": role}


def video(data: bytes) -> dict:
    return {"type": "video_url", "video_url": {"url": data_url(data, "video/mp4")}, "role": "reference_video"}


def audio(data: bytes) -> dict:
    return {"type": "audio_url", "audio_url": {"url": data_url(data, "audio/wav")}, "role": "reference_audio"}


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def client(live) -> Ark:
    return Ark(base_url=live.url + "/api/v3", api_key=live.alice, max_retries=0)


def refused(live, content: list[dict], **fields) -> dict:
    with pytest.raises(ArkBadRequestError) as e:
        client(live).content_generation.tasks.create(model="doubao-seedance-2-0", content=content, **fields)
    assert e.value.status_code == 400
    return e.value.body


def finished(live, task_id: str):
    ark = client(live)
    task = wait_for(lambda: ark.content_generation.tasks.get(task_id=task_id), lambda t: t.status in FINISHED)
    assert task.status == "succeeded", task.error
    return task


def test_every_seedance_limit_is_a_400_naming_the_item_and_the_rule(live, tmp_path):
    two, eight = mp4_bytes(tmp_path, 2), mp4_bytes(tmp_path, 8)
    prompt = text("a street at night")
    cases = [  # (content, fields, param, words in the message)
        ([prompt] + [image()] * 10, {}, "content[10].image_url.url", "at most 9 image items"),
        ([prompt] + [video(two)] * 4, {}, "content[4].video_url.url", "at most 3 video items"),
        ([prompt, image()] + [audio(wav_bytes(2))] * 4, {}, "content[5].audio_url.url", "at most 3 audio items"),
        ([prompt] + [image()] * 9 + [video(two)] * 3 + [audio(wav_bytes(1))], {}, "content[13].audio_url.url",
         "at most 12 images, videos and audio clips in all"),
        ([prompt, video(eight), video(eight)], {}, "content[2].video_url.url", "last 16.00s together; at most 15s"),
        ([prompt, video(mp4_bytes(tmp_path, 1))], {}, "content[1].video_url.url", "last 1.00s together; at least 2s"),
        ([prompt, image(), audio(wav_bytes(8)), audio(wav_bytes(8))], {}, "content[3].audio_url.url",
         "reference audio clips last 16.00s together; at most 15s"),
        ([prompt, audio(wav_bytes(2))], {}, "content[1].role", "needs at least one reference image or video"),
        ([prompt, image("first_frame"), video(two)], {}, "content[2].role",
         "first/last frame content cannot be mixed with reference media content"),
        ([prompt, image("last_frame")], {}, "content[1].role", "a last_frame needs a first_frame"),
        ([text("copy the move of @video2"), video(two)], {}, "prompt", "the closest is @video1"),
        ([text("@audio1 rings"), image()], {}, "prompt", "no reference audio clips"),
        ([prompt], {"frames": 30}, "frames", "25 + 4n from 29 to 289 (the closest is 29)"),
        ([prompt], {"service_tier": "flexx"}, "service_tier", 'did you mean "flex"'),
        ([prompt], {"draft": True, "resolution": "720p"}, "resolution", "a draft is 480p"),
        ([{"type": "draft_task", "draft_task": {"id": "cgt-nope"}}], {}, "content[0].draft_task.id",
         'no draft task with id "cgt-nope"'),
    ]  # fmt: skip
    for content, fields, param, words in cases:
        body = refused(live, content, **fields)
        assert body["code"] == "InvalidParameter" and body["param"] == param, (param, body)
        assert words in body["message"], (words, body["message"])
        if param.startswith("content["):  # the message itself names the item
            assert body["message"].startswith(param.split(".")[0]), body["message"]


def test_fields_round_trip_and_usage_is_seedances_exact_count(live, tmp_path):
    ark = client(live)
    tall = mp4_bytes(tmp_path, 2, width=36, height=64)  # 9:16: ratio "adaptive" follows it
    created = ark.content_generation.tasks.create(
        model="doubao-seedance-2-0", content=[text("a lighthouse; the camera copies @video1"), video(tall)],
        frames=29, seed=11, ratio="adaptive", resolution="480p", service_tier="flex",
        execution_expires_after=3600, generate_audio=True, camera_fixed=True, watermark=True,
    )  # fmt: skip
    task = finished(live, created.id)
    assert (task.frames, task.framespersecond, task.duration, task.seed) == (29, 24, 1, 11)
    assert (task.ratio, task.resolution, task.service_tier, task.execution_expires_after) == (
        "9:16", "480p", "flex", 3600)  # fmt: skip
    assert (
        task.generate_audio is True and task.draft is False and (task.model_extra or {})["watermark"] is True
    )
    assert task.usage.completion_tokens == task.usage.total_tokens == 480 * 864 * 29 // 1024 == 11745
    info = read_video_bytes(httpx.get(task.content.video_url, timeout=30).content, tmp_path)
    assert (info.width, info.height, info.num_frames) == (480, 864, 29)

    # duration -1: the director picks (a shot with no length of its own is 5 s)
    picked = finished(live, ark.content_generation.tasks.create(
        model="m", content=[text("a kite over the dunes --fps 12")], duration=-1, resolution="480p", ratio="1:1").id)  # fmt: skip
    assert (picked.duration, picked.frames, picked.framespersecond) == (5, 60, 12)
    assert picked.usage.completion_tokens == 640 * 640 * 12 * 5 // 1024 == 24000


def read_video_bytes(data: bytes, tmp_path):
    path = tmp_path / "got.mp4"
    path.write_bytes(data)
    return read_video(path)


def test_reference_audio_mentions_place_music_and_a_sound_at_its_shot(live, tmp_path):
    """@audio1 as the music (220 Hz, under the whole film), @audio2 a sound in shot 2 (1.5 kHz)."""
    content = [text("Night market. @audio1 is the background music.\nShot 1 (1s): Lanterns sway.\n"
                     "Shot 2 (1s): A gong is struck (@audio2)."),
               image(), audio(wav_bytes(2.0, 220.0)), audio(wav_bytes(1.0, 1500.0))]  # fmt: skip
    task = finished(live, client(live).content_generation.tasks.create(
        model="m", content=content, resolution="480p").id)  # fmt: skip
    path = tmp_path / "market.mp4"
    path.write_bytes(httpx.get(task.content.video_url, timeout=30).content)
    sound = read_audio(path, RATE)
    shot1, shot2 = sound[2400 : RATE - 2400], sound[RATE + 2400 : 2 * RATE - 2400]

    def share(audio: np.ndarray, hz: float) -> float:
        spectrum = np.abs(np.fft.rfft(audio.mean(axis=1)))
        freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
        return float(spectrum[np.abs(freqs - hz) < 40].sum() / (spectrum.sum() + 1e-9))

    assert share(shot1, 220.0) > 0.3 and share(shot1, 1500.0) < 0.05  # music only
    assert share(shot2, 1500.0) > 0.3 and share(shot2, 220.0) > 0.02  # the gong, the music ducked under it


def test_a_draft_is_an_instant_preview_then_re_runs_at_full_quality_from_its_id(live, tmp_path):
    ark = client(live)
    draft = finished(live, ark.content_generation.tasks.create(
        model="doubao-seedance-2-0", content=[text("a red kite --dur 1"), image(), audio(wav_bytes(1.0))],
        draft=True, seed=5).id)  # fmt: skip
    assert (draft.draft, draft.resolution, draft.seed) == (True, "480p", 5)
    full = finished(live, ark.content_generation.tasks.create(
        model="doubao-seedance-2-0", content=[{"type": "draft_task", "draft_task": {"id": draft.id}}],
        resolution="720p").id)  # fmt: skip
    assert full.draft is False and full.draft_task_id == draft.id
    rerun = [{"type": "draft_task", "draft_task": {"id": draft.id}}]
    body = refused(live, rerun, seed=6)
    assert body["param"] == "seed" and "keeps its draft's seed" in body["message"]
    body = refused(live, [*rerun, text("another prompt")])
    assert body["param"] == "content[1]" and "send it as the only content item" in body["message"]
    body = refused(live, [{"type": "draft_task", "draft_task": {"id": full.id}}])  # not a draft itself
    assert body["param"] == "content[0].draft_task.id"
    assert (full.resolution, full.seed, full.duration, full.frames, full.ratio) == (
        "720p", 5, draft.duration, draft.frames, draft.ratio)  # fmt: skip
    assert full.revised_prompt == draft.revised_prompt == "a red kite"
    a = read_frames_bytes(httpx.get(draft.content.video_url, timeout=30).content, tmp_path / "d.mp4")
    b = read_frames_bytes(httpx.get(full.content.video_url, timeout=30).content, tmp_path / "f.mp4")
    assert draft.ratio == "1:1"  # "adaptive": the square reference image
    assert a.shape[1:3] == (640, 640) and b.shape[1:3] == (960, 960) and len(a) == len(b) == 24
    # the same shot, frame for frame: the full video's mean colours match the draft's
    mean_a = a.reshape(len(a), -1, 3).mean(axis=1)
    mean_b = b.reshape(len(b), -1, 3).mean(axis=1)
    assert np.abs(mean_a - mean_b).max() < 6
    assert read_audio(tmp_path / "f.mp4", RATE).std() > 0.01  # the draft's reference audio came along


def read_frames_bytes(data: bytes, path):
    path.write_bytes(data)
    return read_frames(path)
