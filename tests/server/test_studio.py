"""The web studio at `/` of the server (`yingxi serve`), driven in real headless Chromium (Debian's, via
Playwright): a key is entered, a two-shot film written, submitted, rendered by the animatic worker and screened."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.server.conftest import Server
from yingxi.film.model import FRAMINGS
from yingxi.film.prompt import parse_prompt
from yingxi.film.vocabulary import camera_words, transition_words

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TASKS = "/api/v3/contents/generations/tasks"
TWO_SHOTS = "Shot 1 (1s, wide, pan left): A red kite.\nShot 2 (1s, close-up, crossfade): Green hills."
H264 = 'video/mp4; codecs="avc1.42E01E"'


# Records (status, phase, percent) of the monitor on every change, into window.seenMonitor.
RECORD_MONITOR = """() => {
  window.seenMonitor = [];
  const text = (id) => document.getElementById(id).textContent;
  const record = () => {
    const row = [document.getElementById("task-status").dataset.status, text("progress-shot"), text("progress-percent")];
    const last = window.seenMonitor[window.seenMonitor.length - 1];
    if (!last || last.join("|") !== row.join("|")) window.seenMonitor.push(row);
  };
  new MutationObserver(record).observe(document.getElementById("monitor"),
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def _open(page: Page, server: Server) -> list[str]:
    """Load the studio; the returned list collects the page's uncaught JavaScript errors."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    return errors


def _studio(browser: Browser, server: Server) -> tuple[Page, list[str]]:
    page = browser.new_context(viewport={"width": 1440, "height": 960}).new_page()
    return page, _open(page, server)


def _connect(page: Page, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#key-save")


def test_studio_writes_shoots_and_screens_a_two_shot_film(browser: Browser, server: Server) -> None:
    page, js_errors = _studio(browser, server)
    _connect(page, server.key)
    expect(page.locator("#key-state")).to_have_text("connected")
    expect(page.locator("#tasks .empty")).to_contain_text("No films yet")

    # The editor reads the shot headers as they are typed: two shots, and duration is set per shot.
    page.fill("#prompt", TWO_SHOTS)
    expect(page.locator("#outline li")).to_have_count(2)
    expect(page.locator("#outline li span").nth(0)).to_have_text("1s · wide · pan left")
    expect(page.locator("#outline li span").nth(1)).to_have_text("1s · close-up · crossfade")
    expect(page.locator("#outline-summary")).to_have_text("2 shots · ~2s")
    expect(page.locator("#duration")).to_be_disabled()
    page.click('#resolution label:has-text("480p")')
    expect(page.locator('input[name="ratio"][value="16:9"]')).to_be_checked()

    page.evaluate(RECORD_MONITOR)
    page.click("#submit")
    expect(page.locator("#task-status")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    task_id = page.text_content("#task-id")
    assert task_id and task_id.startswith("cgt-")

    # Whatever the polls caught on the way: statuses only move forward, the bar only grows, and the
    # phase reads as planning, one of the two shots, or the edit (how many polls land is up to timing).
    seen = page.evaluate("() => window.seenMonitor")
    order = ["idle", "queued", "running", "succeeded"]
    statuses = [s for s, _, _ in seen]
    assert set(statuses) <= set(order) and statuses == sorted(statuses, key=order.index)
    percents = [int(p.rstrip("%")) for s, _, p in seen if s == "running"]
    assert percents == sorted(percents) and all(0 <= p <= 100 for p in percents)
    phases = {shot for s, shot, _ in seen if s == "running"}
    assert phases <= {"", "planning the shots", "shot 1 of 2", "shot 2 of 2", "editing and encoding"}

    # What the page shows agrees with the task the API reports.
    task = server.api("GET", f"{TASKS}/{task_id}").json()
    assert task["status"] == "succeeded" and task["resolution"] == "480p" and task["ratio"] == "16:9"
    assert task["duration"] == 2 and task["total_shots"] == 2 and task["progress"] == 100
    expect(page.locator("#progress-percent")).to_have_text("100%")
    expect(page.locator("#progress-shot")).to_have_text("2 shots")
    expect(page.locator("#task-facts")).to_contain_text("480p · 16:9 · 2s")
    expect(page.locator("#task-error")).to_be_hidden()
    video = page.locator("#video")
    expect(video).to_be_visible()
    src = video.get_attribute("src")
    assert src == task["content"]["video_url"]
    expect(page.locator("#download")).to_have_attribute("href", src)
    expect(page.locator("#download")).to_have_attribute("download", f"{task_id}.mp4")

    # The MP4 the <video> element loads: fetched the way the page fetches it (signed URL, no header).
    response = page.request.get(src)
    assert response.status == 200 and response.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(response.body())) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        fps = float(stream.average_rate)
    assert frames[0].shape == (480, 864, 3)
    assert fps == 24 and abs(len(frames) / fps - 2.0) <= 1 / fps  # two 1 s shots; the crossfade fits inside
    # Shot 1 (a red kite) and shot 2 (green hills) are different pictures, not a frozen frame.
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 5

    # Debian's Chromium here decodes H.264; then the element must really play the film.
    can_play = page.evaluate(f"() => document.createElement('video').canPlayType('{H264}')")
    assert can_play in ("probably", "maybe"), (
        "this Chromium cannot play H.264; the studio's player cannot work"
    )
    page.evaluate("() => document.getElementById('video').play()")
    page.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.readyState >= 2 && v.currentTime > 0.4 }",
        timeout=20_000,
    )
    played = page.evaluate(
        "() => { const v = document.getElementById('video'); v.pause();"
        " return {w: v.videoWidth, h: v.videoHeight, d: v.duration, err: v.error && v.error.code} }"
    )
    assert played["w"] == 864 and played["h"] == 480 and played["err"] is None
    assert abs(played["d"] - 2.0) <= 0.1

    # The reels list the film, newest first, with its status.
    entry = page.locator("#tasks .task").first
    expect(entry).to_have_attribute("data-id", task_id)
    expect(entry.locator(".badge")).to_have_attribute("data-status", "succeeded")
    expect(entry.locator(".task-prompt")).to_have_text("2 shots — A red kite.")
    expect(entry).to_have_class("task active")

    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "studio.png"), full_page=True)
    width, height = Image.open(ARTIFACTS / "studio.png").size
    assert width == 1440 and height >= 960
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1440  # nothing spills sideways

    # A reload keeps the key (localStorage); opening the film from the reels screens it again.
    again = page.context.new_page()
    again_errors = _open(again, server)
    expect(again.locator("#key-state")).to_have_text("connected")
    expect(again.locator("#prompt")).to_have_value(TWO_SHOTS)  # the draft survives too
    again.click(f'#tasks .task[data-id="{task_id}"] .task-prompt')
    expect(again.locator("#task-status")).to_have_attribute("data-status", "succeeded")
    again_src = again.locator("#video").get_attribute("src")
    assert again_src and again_src.split("?")[0] == src.split("?")[0]

    # Delete asks once more, then the film is gone from the reels and from the API.
    delete = again.locator(f'#tasks .task[data-id="{task_id}"] .delete')
    delete.click()
    expect(delete).to_have_text("Delete?")
    delete.click()
    expect(again.locator(f'#tasks .task[data-id="{task_id}"]')).to_have_count(0)
    assert server.api("GET", f"{TASKS}/{task_id}").status_code == 404
    assert js_errors == [] and again_errors == []


def test_studio_says_clearly_when_the_key_is_wrong_or_missing(browser: Browser, server: Server) -> None:
    before = server.api("GET", TASKS).json()["total"]
    page, js_errors = _studio(browser, server)

    page.fill("#prompt", "A lighthouse in the fog.")
    page.click("#submit")
    expect(page.locator("#banner")).to_be_visible()
    expect(page.locator("#banner-text")).to_have_text("Enter your API key first (top right), then try again.")

    _connect(page, "yx-not-a-real-key")
    expect(page.locator("#key-state")).to_have_text("rejected")
    expect(page.locator("#tasks .empty")).to_have_text(
        "This API key was not accepted; check it and connect again."
    )
    expect(page.locator("#banner-text")).to_have_text("API key rejected: the API key is not valid")
    page.click("#banner-close")
    expect(page.locator("#banner")).to_be_hidden()
    page.click("#submit")
    expect(page.locator("#banner-text")).to_have_text("API key rejected: the API key is not valid")
    expect(page.locator("#task-status")).to_have_attribute("data-status", "idle")
    assert server.api("GET", TASKS).json()["total"] == before
    assert js_errors == []


def _submit(page: Page, prompt: str, seconds: int) -> str:
    """Submit a one-shot film from the page; the id of the task the monitor then shows."""
    before = page.text_content("#task-id")
    page.fill("#prompt", prompt)
    page.fill("#duration", str(seconds))
    page.click("#submit")
    expect(page.locator("#task-id")).not_to_have_text(before or "")
    task_id = page.text_content("#task-id")
    assert task_id and task_id.startswith("cgt-")
    return task_id


def test_studio_reports_cancelled_and_failed_films(browser: Browser, server: Server, tmp_path: Path) -> None:
    """One worker, three films: the first renders while the second (whose first frame then vanishes from the
    server's disk) fails and the third is cancelled from the reels while it waits."""
    Image.fromarray(np.full((90, 160, 3), 200, np.uint8)).save(tmp_path / "grey.png")
    page, js_errors = _studio(browser, server)
    _connect(page, server.key)
    expect(page.locator("#key-state")).to_have_text("connected")
    page.click('#resolution label:has-text("480p")')
    first = _submit(page, "A paper boat drifts on a pond.", 4)  # long enough for the others to wait
    page.set_input_files("#first-frame", str(tmp_path / "grey.png"))
    second = _submit(page, "The boat reaches the shore.", 2)
    (server.data_dir / "tasks" / second / "inputs" / "first_frame.png").unlink()
    page.locator("#thumbs-first_frame .remove").click()
    third = _submit(page, "A second boat follows it.", 2)

    cancel = page.locator(f'#tasks .task[data-id="{third}"] .delete')
    expect(cancel).to_have_text("Cancel")
    cancel.click()
    expect(cancel).to_have_text("Cancel?")
    cancel.click()
    expect(page.locator("#task-status")).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#screen-text")).to_have_text("Cancelled.")
    expect(page.locator("#video")).to_be_hidden()
    entry = page.locator(f'#tasks .task[data-id="{third}"]')
    expect(entry.locator(".badge")).to_have_attribute("data-status", "cancelled")
    expect(entry.locator(".delete")).to_have_text("Delete")
    assert server.api("GET", f"{TASKS}/{third}").json()["status"] == "cancelled"

    # The reels refresh on their own while films render: the first succeeds, the second fails.
    expect(page.locator(f'#tasks .task[data-id="{first}"] .badge')).to_have_attribute(
        "data-status", "succeeded", timeout=60_000
    )
    expect(page.locator(f'#tasks .task[data-id="{second}"] .badge')).to_have_attribute(
        "data-status", "failed"
    )
    page.click(f'#tasks .task[data-id="{second}"] .task-prompt')
    expect(page.locator("#task-status")).to_have_attribute("data-status", "failed")
    error = server.api("GET", f"{TASKS}/{second}").json()["error"]
    assert error["code"] == "InvalidParameter" and "cannot read image" in error["message"]
    assert (
        str(server.data_dir) not in error["message"] and "first_frame.png" in error["message"]
    )  # no server paths
    expect(page.locator("#task-error")).to_have_text(error["code"] + error["message"])  # code, then message
    expect(page.locator("#screen-text")).to_have_text("No film this time.")
    expect(page.locator("#download")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "studio-failed.png"))
    assert js_errors == []


def test_studio_shows_the_servers_message_for_a_misspelt_script(browser: Browser, server: Server) -> None:
    page, js_errors = _studio(browser, server)
    _connect(page, server.key)
    expect(page.locator("#key-state")).to_have_text("connected")
    page.fill("#prompt", "Shot 1 (1s, wide, pan lft): A red kite.\nShot 2 (1s): Green hills.")
    page.click("#submit")
    expect(page.locator("#banner-text")).to_have_text(
        'shot 1, camera: unknown camera move "pan lft" (did you mean "pan left"?); accepted: pan left, pan right'
    )
    expect(page.locator("#task-status")).to_have_attribute("data-status", "idle")
    assert js_errors == []


def test_studio_attaches_previews_and_sends_reference_images(
    browser: Browser, server: Server, tmp_path: Path
) -> None:
    """Files become data URLs with previews and remove buttons; the server receives them by role."""
    red = np.zeros((96, 160, 3), np.uint8)
    red[..., 0] = 220
    blue = np.zeros((96, 160, 3), np.uint8)
    blue[..., 2] = 220
    Image.fromarray(red).save(tmp_path / "red.png")
    Image.fromarray(blue).save(tmp_path / "blue.png")

    page, js_errors = _studio(browser, server)
    _connect(page, server.key)
    expect(page.locator("#key-state")).to_have_text("connected")
    page.set_input_files("#first-frame", str(tmp_path / "red.png"))
    page.set_input_files("#reference-images", [str(tmp_path / "blue.png"), str(tmp_path / "red.png")])
    firsts = page.locator("#thumbs-first_frame .thumb")
    refs = page.locator("#thumbs-reference_image .thumb")
    expect(firsts).to_have_count(1)
    expect(refs).to_have_count(2)
    assert firsts.locator("img").get_attribute("src").startswith("data:image/png;base64,")
    expect(refs.nth(0).locator(".thumb-name")).to_have_text("blue.png")
    refs.nth(1).locator("button.remove").click()  # drop the second reference (red.png)
    expect(refs).to_have_count(1)
    expect(refs.nth(0).locator(".thumb-name")).to_have_text("blue.png")
    firsts.nth(0).locator("button.remove").click()  # Seedance 2.0 takes a first frame or references, not both
    expect(firsts).to_have_count(0)

    page.fill("#prompt", "The lantern glows.")  # one shot: the duration field applies
    expect(page.locator("#duration")).to_be_enabled()
    page.fill("#duration", "2")
    page.fill("#seed", "7")
    page.click('#resolution label:has-text("480p")')
    page.click('#ratio label:has-text("1:1")')
    page.click("#submit")
    expect(page.locator("#task-status")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    task_id = page.text_content("#task-id")
    task = server.api("GET", f"{TASKS}/{task_id}").json()
    assert (task["ratio"], task["resolution"], task["duration"], task["seed"]) == ("1:1", "480p", 2, 7)
    inputs = server.data_dir / "tasks" / task_id / "inputs"
    assert sorted(p.name for p in inputs.iterdir()) == ["reference_image_1.png"]
    assert np.array_equal(np.asarray(Image.open(inputs / "reference_image_1.png").convert("RGB")), blue)
    assert js_errors == []


def test_studio_grammar_and_example_match_the_parser(browser: Browser, server: Server) -> None:
    """The grammar beside the editor lists exactly the parser's words, and its example parses."""
    page, js_errors = _studio(browser, server)

    def words(field: str) -> set[str]:
        found = set()
        for code in page.locator(f'.grammar dd[data-field="{field}"] > code').all_text_contents():
            head, _, tail = code.rpartition(" ")  # "pan left/right" -> pan left, pan right
            found |= {f"{head} {d}".strip() for d in tail.split("/")}
        return found

    assert words("framing") == set(FRAMINGS)
    assert words("camera") == set(camera_words())
    assert words("transition") == set(transition_words())
    assert page.locator('.grammar dd[data-field="camera"] span > code').all_text_contents() == [
        "slow",
        "fast",
    ]

    page.click("#insert-example")
    example = page.input_value("#prompt")
    film = parse_prompt(example)
    assert [s.duration for s in film.shots] == [4, 3, 3, 5]
    assert [s.transition.kind for s in film.shots] == ["cut", "crossfade", "cut", "fade"]
    assert film.shots[2].continue_previous and film.shots[1].dialogue[0].character == "OLD JIA"
    expect(page.locator("#outline li")).to_have_count(4)
    expect(page.locator("#outline-summary")).to_have_text("4 shots · ~15s")
    assert js_errors == []
