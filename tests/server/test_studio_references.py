"""The studio in real headless Chromium: named reference images (a name field per image, `@image2` in a
shot), music upload, burnt-in subtitles and the .srt link, the YAML script tab, the duration field's limits
from the server, and errors shown beside the shot, field or image they name."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av
import numpy as np
from PIL import Image
from playwright.sync_api import Browser, expect

from tests.server.conftest import Server
from tests.server.test_references import BLUE, RED, near
from tests.server.test_studio import ARTIFACTS, TASKS, _connect, _studio
from yingxi.server.store import JobStore


def _files(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name, colour in (("jia.png", RED), ("li.png", BLUE)):
        Image.fromarray(np.full((64, 96, 3), colour, np.uint8)).save(tmp_path / name)
        paths[name] = tmp_path / name
    rate = 24000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * rate) / rate) * 32767).astype("<i2")
    with wave.open(str(tmp_path / "tune.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone.tobytes())
    paths["tune.wav"] = tmp_path / "tune.wav"
    return paths


def _decode(data: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """(frames (F, H, W, 3), the first audio channel's samples, its rate) of an MP4."""
    with av.open(io.BytesIO(data)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])
    with av.open(io.BytesIO(data)) as c:
        audio = np.concatenate([f.to_ndarray()[0] for f in c.decode(c.streams.audio[0])])
        rate = c.streams.audio[0].rate
    return frames, audio, rate


def _centre(frame: np.ndarray) -> tuple[int, ...]:
    h, w = frame.shape[:2]
    return tuple(int(v) for v in frame[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].reshape(-1, 3).mean(axis=0))


def _bright_bottom(frame: np.ndarray) -> int:
    """Near-white pixels in the bottom quarter: subtitle text on a solid red or blue keyframe."""
    return int((frame[3 * frame.shape[0] // 4 :].min(axis=2) > 180).sum())


def test_studio_named_references_music_and_burnt_in_subtitles(
    browser: Browser, server: Server, tmp_path: Path
):
    files = _files(tmp_path)
    page, js_errors = _studio(browser, server)
    _connect(page, server.key)
    expect(page.locator("#key-state")).to_have_text("connected")
    expect(page.locator("#duration")).to_have_attribute("max", "60")  # from /api/v1/limits, not 15
    expect(page.locator("#duration")).to_have_attribute("min", "1")

    page.fill("#prompt", 'Shot 1 (1s, medium, static): The old man on the ice.\nOLD JIA: "Hi."\n'
              "Shot 2 (1s, medium, static): @image2 by the fire.")  # fmt: skip
    page.set_input_files("#reference-images", [str(files["jia.png"]), str(files["li.png"])])
    refs = page.locator("#thumbs-reference_image .thumb")
    expect(refs).to_have_count(2)
    expect(refs.nth(1).locator(".ref-mention")).to_have_text("@image2")
    refs.nth(0).locator(".ref-name").fill("OLD JIA")  # image 1 is OLD JIA's; image 2 is mentioned in shot 2
    page.set_input_files("#music", str(files["tune.wav"]))
    expect(page.locator("#thumbs-music .thumb-name")).to_have_text("tune.wav")
    page.check("#burn-subtitles")
    page.click('#resolution label:has-text("480p")')
    page.click("#submit")
    expect(page.locator("#task-status")).to_have_attribute("data-status", "succeeded", timeout=90_000)
    task_id = page.text_content("#task-id")

    inputs = server.data_dir / "tasks" / task_id / "inputs"
    assert sorted(p.name for p in inputs.iterdir()) == ["music.wav", "reference_image_1.png",
                                                        "reference_image_2.png"]  # fmt: skip
    store = JobStore(server.data_dir / "jobs.db")
    job = store.get(task_id)
    store.close()
    assert (
        job.request["reference_names"] == ["OLD JIA", None] and job.request["api"]["burn_subtitles"] is True
    )

    src = page.locator("#video").get_attribute("src")
    frames, audio, rate = _decode(page.request.get(src).body())
    shot1, shot2 = frames[12], frames[min(36, len(frames) - 6)]
    assert near(_centre(shot1), RED) and near(_centre(shot2), BLUE), (_centre(shot1), _centre(shot2))
    assert _bright_bottom(shot1) > 200 and _bright_bottom(shot2) == 0  # "Hi." drawn in shot 1 only
    middle = audio[int(len(audio) * 0.55) : int(len(audio) * 0.7)]  # shot 2, before the film's fade-out
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    peak = np.fft.rfftfreq(len(middle), 1 / rate)[spectrum.argmax()]
    assert abs(peak - 440) < 5 and np.sqrt(np.mean(middle**2)) > 0.005, peak  # the uploaded tune, as the bed

    srt = page.locator("#subtitles")
    expect(srt).to_be_visible()
    body = page.request.get(srt.get_attribute("href"))
    assert body.status == 200 and body.headers["content-type"].startswith("application/x-subrip")
    assert "00:00:00," in body.text() and "Hi." in body.text()

    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "studio-references.png"), full_page=True)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1440
    assert js_errors == []


YAML = """resolution: 480p
characters:
  OLD JIA: {description: a weathered man, image: jia.png}
  XIAO LI: {description: the same man at twenty}
shots:
  - {prompt: The old man., duration: 1, framing: medium, characters: [OLD JIA]}
  - prompt: The young man.
    duration: 1
    framing: medium
    dialogue: [{character: XIAO LI, line: Hi.}]
"""


def test_studio_yaml_tab_sends_a_script_with_its_files(browser: Browser, server: Server, tmp_path: Path):
    files = _files(tmp_path)
    page, js_errors = _studio(browser, server)
    _connect(page, server.key)
    expect(page.locator("#key-state")).to_have_text("connected")
    page.click("#tab-yaml")
    expect(page.locator("#yaml")).to_be_visible()
    expect(page.locator("#prompt")).to_be_hidden()
    page.fill("#yaml", YAML)
    # jia.png is named by the script; li.png is tied to XIAO LI by its name field (ref=XIAO LI=li.png).
    page.set_input_files("#reference-images", [str(files["jia.png"]), str(files["li.png"])])
    page.locator("#thumbs-reference_image .ref-name").nth(1).fill("XIAO LI")
    page.click("#submit")
    expect(page.locator("#task-status")).to_have_attribute("data-status", "succeeded", timeout=90_000)
    task_id = page.text_content("#task-id")
    assert task_id.startswith("film-")
    frames, _, _ = _decode(page.request.get(page.locator("#video").get_attribute("src")).body())
    assert near(_centre(frames[12]), RED) and near(_centre(frames[min(36, len(frames) - 6)]), BLUE)
    expect(page.locator("#subtitles")).to_be_visible()  # not burnt in: the .srt is still there
    assert _bright_bottom(frames[min(36, len(frames) - 6)]) == 0

    # The tab and the script survive a reload.
    again = page.context.new_page()
    again.goto(server.url + "/")
    expect(again.locator("#yaml")).to_have_value(YAML)
    expect(again.locator("#tab-yaml")).to_have_attribute("aria-selected", "true")
    assert js_errors == []


def test_studio_shows_each_error_beside_what_it_names(browser: Browser, server: Server, tmp_path: Path):
    files = _files(tmp_path)
    before = server.api("GET", TASKS).json()["total"]
    page, js_errors = _studio(browser, server)
    _connect(page, server.key)
    expect(page.locator("#key-state")).to_have_text("connected")

    # A shot out of the limit table is marked as it is typed, before anything is sent.
    page.fill("#prompt", "Shot 1 (1s): A kite.\nShot 2 (61s): Hills.")
    expect(page.locator('#outline li[data-shot="2"] .shot-error')).to_have_text(
        "61s is out of range; a shot lasts 0.25s to 60s"
    )
    expect(page.locator('#outline li[data-shot="1"] .shot-error')).to_have_count(0)

    # The server's error about shot 2 lands on shot 2 (and in the banner).
    page.fill("#prompt", "Shot 1 (1s): A kite.\nShot 2 (1s, pan lft): Hills.")
    page.click("#submit")
    note = page.locator('#outline li[data-shot="2"] .shot-error')
    expect(note).to_contain_text('camera: unknown camera move "pan lft" (did you mean "pan left"?)')
    expect(page.locator("#outline li.has-error")).to_have_count(1)
    expect(page.locator("#banner")).to_be_visible()
    page.locator("#thumbs-reference_image").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "studio-shot-error.png"))

    # A misspelt character name lands under its image.
    page.fill("#prompt", 'Shot 1 (1s): A kite.\nOLD JIA: "Hi."\nShot 2 (1s): Hills.')
    page.set_input_files("#reference-images", [str(files["jia.png"])])
    page.locator("#thumbs-reference_image .ref-name").fill("OLD JAI")
    page.click("#submit")
    expect(page.locator("#thumbs-reference_image .thumb .field-error")).to_contain_text(
        'unknown character "OLD JAI" (did you mean "OLD JIA"?)'
    )
    expect(page.locator("#thumbs-reference_image .thumb.has-error")).to_have_count(1)

    # A mention past the images lands under the prompt.
    page.fill("#prompt", "Shot 1 (1s): @image1 flies.\nShot 2 (1s): @image4 lands.")
    page.click("#submit")
    expect(page.locator("#prompt-error")).to_contain_text('"@image4" refers to reference image 4')

    # In the YAML tab, the error about shot 2 is shown under the script.
    page.click("#tab-yaml")
    page.fill("#yaml", "shots:\n  - {prompt: a, duration: 1}\n  - {prompt: b, duration: 1, framing: wdie}\n")
    page.click("#submit")
    expect(page.locator("#yaml-error")).to_contain_text('shot 2, framing: unknown framing "wdie"')
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "studio-yaml-error.png"))
    assert server.api("GET", TASKS).json()["total"] == before  # nothing was queued
    assert js_errors == []
