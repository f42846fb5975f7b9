"""The studio's smaller controls in real headless Chromium: the key toggle, Clear, the Prompt/YAML tabs, the
last frame, Reuse, the reels' Refresh and pages, the progress bar, the duration and seed fields' own errors
and the model list. Each test checks what a person sees, or the request the server receives."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.server.conftest import Server, wait_for
from tests.server.test_studio import TASKS, TWO_SHOTS, _connect, _studio

# Records (aria-valuenow, the fill's width, the status) of the progress bar on every change.
RECORD_PROGRESS = """() => {
  window.seenProgress = [];
  const record = () => {
    const bar = document.getElementById("progressbar");
    const row = [bar.getAttribute("aria-valuenow"), document.getElementById("progress-fill").style.width,
                 document.getElementById("task-status").dataset.status,
                 document.getElementById("progress-wrap").hidden];
    const last = window.seenProgress[window.seenProgress.length - 1];
    if (!last || last.join("|") !== row.join("|")) window.seenProgress.push(row);
  };
  new MutationObserver(record).observe(document.getElementById("monitor"),
    {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def _connected(browser: Browser, server: Server, key: str | None = None) -> tuple[Page, list[str]]:
    page, js_errors = _studio(browser, server)
    _connect(page, key or server.key)
    expect(page.locator("#key-state")).to_have_text("connected")
    return page, js_errors


def _posted(page: Page) -> list[dict]:
    """The JSON bodies of the task-creating POSTs the page sends, as they go out."""
    bodies: list[dict] = []
    page.on(
        "request", lambda r: r.method == "POST" and r.url.endswith(TASKS) and bodies.append(r.post_data_json)
    )
    return bodies


def _create(server: Server, prompt: str, **settings) -> str:
    """A task made through the API with the official Ark body (a text item and the settings)."""
    body = {"model": "yingxi", "content": [{"type": "text", "text": prompt}], **settings}
    r = httpx.post(
        server.url + TASKS, json=body, headers={"Authorization": f"Bearer {server.key}"}, timeout=10
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _total(server: Server) -> int:
    return server.api("GET", TASKS).json()["total"]


def test_key_toggle_shows_and_hides_the_key(browser: Browser, server: Server) -> None:
    """The key is typed masked; the toggle reveals it to check for typos, and masks it again."""
    page, js_errors = _studio(browser, server)
    page.fill("#api-key", server.key)
    key, toggle = page.locator("#api-key"), page.locator("#key-toggle")
    expect(key).to_have_attribute("type", "password")
    expect(toggle).to_have_text("show")
    toggle.click()
    expect(key).to_have_attribute("type", "text")
    expect(toggle).to_have_text("hide")
    expect(key).to_have_value(server.key)  # revealing does not change or drop what was typed
    toggle.click()
    expect(key).to_have_attribute("type", "password")
    expect(toggle).to_have_text("show")
    page.click("#key-save")  # the toggle is a plain button: the key still connects as typed
    expect(page.locator("#key-state")).to_have_text("connected")
    assert js_errors == []


def test_clear_and_the_tabs_keep_or_drop_the_text_as_asked(browser: Browser, server: Server) -> None:
    """YAML and back leaves the prompt (and its outline) as it was; Clear empties it, also for a reload."""
    page, js_errors = _studio(browser, server)
    page.fill("#prompt", TWO_SHOTS)
    expect(page.locator("#outline li")).to_have_count(2)
    page.click("#tab-yaml")
    expect(page.locator("#prompt")).to_be_hidden()
    expect(page.locator("#seed")).to_be_disabled()  # a script sets its own seed and durations
    page.fill("#yaml", "shots:\n  - {prompt: a, duration: 1}\n")
    page.click("#tab-prompt")
    expect(page.locator("#tab-prompt")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#tab-yaml")).to_have_attribute("aria-selected", "false")
    expect(page.locator("#yaml")).to_be_hidden()
    expect(page.locator("#prompt")).to_have_value(TWO_SHOTS)
    expect(page.locator("#outline li")).to_have_count(2)
    expect(page.locator("#outline-summary")).to_have_text("2 shots · ~2s")
    expect(page.locator("#duration")).to_be_disabled()  # still per shot
    expect(page.locator("#seed")).to_be_enabled()
    expect(page.locator('input[name="ratio"][value="16:9"]')).to_be_enabled()

    page.click("#clear-prompt")
    expect(page.locator("#prompt")).to_have_value("")
    expect(page.locator("#outline li")).to_have_count(0)
    expect(page.locator("#outline-summary")).to_have_text("")
    expect(page.locator("#duration")).to_be_enabled()  # no shot headers: the field applies again
    again = page.context.new_page()
    again.goto(server.url + "/")
    expect(again.locator("#prompt")).to_have_value("")  # the cleared draft is what is kept
    expect(again.locator("#yaml")).to_have_value("shots:\n  - {prompt: a, duration: 1}\n")  # not cleared
    assert js_errors == []


def test_last_frame_is_previewed_and_sent_with_the_default_model(
    browser: Browser, server: Server, tmp_path: Path
) -> None:
    """The last frame shows a preview and reaches the server as role last_frame, stored beside the first; the
    model field offers (and, left empty, sends) the model the server reports serving."""
    red, blue = np.zeros((90, 160, 3), np.uint8), np.zeros((90, 160, 3), np.uint8)
    red[..., 0], blue[..., 2] = 220, 220
    Image.fromarray(red).save(tmp_path / "start.png")
    Image.fromarray(blue).save(tmp_path / "end.png")
    health = httpx.get(server.url + "/api/v1/health", timeout=10).json()
    served = health.get("model") or health["backend"]

    page, js_errors = _connected(browser, server)
    expect(page.locator("#model-list option")).to_have_count(1)
    assert page.locator("#model-list option").get_attribute("value") == served
    expect(page.locator("#model")).to_have_attribute("placeholder", served)
    bodies = _posted(page)

    # A last frame alone: the server's reason shows under that image, and nothing is queued.
    before = _total(server)
    page.set_input_files("#last-frame", str(tmp_path / "end.png"))
    lasts = page.locator("#thumbs-last_frame .thumb")
    expect(lasts).to_have_count(1)
    expect(lasts.locator(".thumb-name")).to_have_text("end.png")
    assert lasts.locator("img").get_attribute("src").startswith("data:image/png;base64,")
    page.fill("#prompt", "The sky turns from red to blue.")
    page.click("#submit")
    expect(lasts.locator(".field-error")).to_contain_text("a last_frame needs a first_frame image")
    assert _total(server) == before

    page.set_input_files("#first-frame", str(tmp_path / "start.png"))
    page.click('#resolution label:has-text("480p")')
    page.fill("#duration", "1")
    page.click("#submit")
    expect(page.locator("#task-id")).to_have_text(re.compile(r"^cgt-"))
    task_id = page.text_content("#task-id")
    assert [(i["type"], i.get("role")) for i in bodies[-1]["content"]] == [
        ("text", None), ("image_url", "first_frame"), ("image_url", "last_frame")
    ]  # fmt: skip
    assert bodies[-1]["model"] == served
    inputs = server.data_dir / "tasks" / task_id / "inputs"
    assert sorted(p.name for p in inputs.iterdir()) == ["first_frame.png", "last_frame.png"]
    assert np.array_equal(np.asarray(Image.open(inputs / "last_frame.png").convert("RGB")), blue)
    expect(lasts.locator(".field-error")).to_have_count(0)  # the earlier error went with the new submit
    assert server.api("DELETE", f"{TASKS}/{task_id}").status_code == 200  # free the worker for the rest
    assert js_errors == []


def test_reuse_refills_the_form_with_the_tasks_script_and_settings(browser: Browser, server: Server) -> None:
    """Reuse on a finished film puts its script and its settings back in the form, in the Prompt tab, so a
    second take differs only in what the person then changes."""
    prompt = "A paper lantern rises over the lake."
    task_id = _create(server, prompt, ratio="1:1", resolution="480p", duration=2)
    wait_for(lambda: server.api("GET", f"{TASKS}/{task_id}").json(), lambda t: t["status"] == "succeeded")
    page, js_errors = _connected(browser, server)
    page.fill("#prompt", "Something else entirely.")
    page.fill("#duration", "7")
    page.click("#tab-yaml")
    page.click(f'#tasks .task[data-id="{task_id}"] .task-prompt')
    expect(page.locator("#task-status")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#reuse")).to_be_visible()
    page.click("#reuse")
    expect(page.locator("#tab-prompt")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#prompt")).to_be_visible()
    expect(page.locator("#prompt")).to_have_value(prompt)
    expect(page.locator('input[name="ratio"][value="1:1"]')).to_be_checked()
    expect(page.locator('input[name="resolution"][value="480p"]')).to_be_checked()
    expect(page.locator("#duration")).to_have_value("2")
    expect(page.locator("#outline-summary")).to_have_text("one shot · 2s")

    bodies = _posted(page)
    page.click("#submit")  # the second take asks for what the first was
    expect(page.locator("#task-id")).not_to_have_text(task_id)
    body = bodies[-1]
    assert (body["ratio"], body["resolution"], body["duration"]) == ("1:1", "480p", 2)
    assert body["content"] == [{"type": "text", "text": prompt}]
    server.api("DELETE", f"{TASKS}/{page.text_content('#task-id')}")
    assert js_errors == []


def test_reels_pages_and_refresh(browser: Browser, server: Server, live) -> None:
    """Twelve films are two pages of ten, newest first; Refresh shows a film made elsewhere (the reels poll
    only while one is unfinished, so nothing else would)."""
    bob = Server(live.url, live.bob, live.data_dir)  # tenant bob: these films stay off alice's reels
    ids = []
    for n in range(12):
        ids.append(_create(bob, f"Film number {n}.", resolution="480p", duration=1))
        bob.api("DELETE", f"{TASKS}/{ids[-1]}")  # cancelled at once: the queue's limit is 8 per tenant
    page, js_errors = _connected(browser, server, bob.key)
    entries = page.locator("#tasks .task")
    expect(page.locator("#tasks-count")).to_have_text("12 films")
    expect(page.locator("#page-label")).to_have_text("page 1 of 2")
    expect(entries).to_have_count(10)
    assert [e.get_attribute("data-id") for e in entries.all()] == ids[::-1][:10]
    expect(page.locator("#prev-page")).to_be_disabled()
    expect(page.locator("#next-page")).to_be_enabled()

    page.click("#next-page")
    expect(page.locator("#page-label")).to_have_text("page 2 of 2")
    expect(entries).to_have_count(2)
    assert [e.get_attribute("data-id") for e in entries.all()] == [ids[1], ids[0]]
    expect(entries.nth(1).locator(".task-prompt")).to_have_text("Film number 0.")
    expect(page.locator("#prev-page")).to_be_enabled()
    expect(page.locator("#next-page")).to_be_disabled()

    newest = _create(bob, "Made elsewhere.", resolution="480p", duration=1)
    bob.api("DELETE", f"{TASKS}/{newest}")
    page.wait_for_timeout(500)
    expect(page.locator("#tasks-count")).to_have_text("12 films")  # not seen until asked
    page.click("#refresh")
    expect(page.locator("#tasks-count")).to_have_text("13 films")
    expect(entries).to_have_count(3)  # page 2 now holds the three oldest
    assert [e.get_attribute("data-id") for e in entries.all()] == [ids[2], ids[1], ids[0]]
    page.click("#prev-page")
    expect(page.locator("#page-label")).to_have_text("page 1 of 2")
    expect(entries.first).to_have_attribute("data-id", newest)
    expect(entries.first.locator(".badge")).to_have_attribute("data-status", "cancelled")
    assert js_errors == []


def test_progress_bar_climbs_to_100_while_the_film_renders(browser: Browser, server: Server) -> None:
    """The bar (its ARIA value, which screen readers read, and the fill's width) starts at 0, only grows and
    ends at 100 when the film is done; it is hidden until a task is on the monitor."""
    page, js_errors = _connected(browser, server)
    expect(page.locator("#progress-wrap")).to_be_hidden()
    page.evaluate(RECORD_PROGRESS)
    page.click('#resolution label:has-text("480p")')
    # long enough (8 s of film, several seconds of rendering) that the 1 s poll lands mid-render
    page.fill("#prompt", "Shot 1 (4s, wide): A red kite.\nShot 2 (4s, close-up): Green hills.")
    page.click("#submit")
    expect(page.locator("#task-status")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(page.locator("#progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#progress-fill")).to_have_attribute("style", "width: 100%;")
    expect(page.locator("#progress-message")).to_have_text("")  # messages are for a render under way
    seen = page.evaluate("() => window.seenProgress")
    shown = [(int(v), w, s) for v, w, s, hidden in seen if not hidden]
    assert all(w == f"{v}%" for v, w, _ in shown), shown
    # from the bar's 0 before the task (hidden), through what each 1 s poll found (the first may already find
    # the task a few percent in), to 100
    values = [int(v) for v, *_ in seen]
    assert values[0] == 0 and values[-1] == 100 and values == sorted(values), seen
    assert any(0 < v < 100 for v, _, s in shown if s == "running"), seen  # it moved on the way, not 0 → 100
    assert js_errors == []


def test_bad_duration_or_seed_is_shown_beside_the_field_and_nothing_is_sent(
    browser: Browser, server: Server
) -> None:
    """A fraction or a non-number is caught in the page (it used to be cut to a whole number, or dropped for
    the default, silently); a whole number out of range is the server's to refuse, shown beside the field."""
    before = _total(server)
    page, js_errors = _connected(browser, server)
    bodies = _posted(page)
    page.fill("#prompt", "A kite over the hills.")
    page.fill("#duration", "2.5")
    page.click("#submit")
    expect(page.locator("#duration-error")).to_have_text(
        "duration must be a whole number of seconds, not 2.5"
    )
    expect(page.locator("#duration")).to_have_class(re.compile(r"\bhas-error\b"))
    page.fill("#duration", "")
    page.locator("#duration").press_sequentially("3-")  # a number field then holds no number at all
    page.click("#submit")
    expect(page.locator("#duration-error")).to_have_text("duration must be a whole number of seconds")

    page.fill("#duration", "0")
    page.click("#submit")
    expect(page.locator("#duration-error")).to_have_text("duration 0s is out of range; 0.25-60s")
    page.fill("#duration", "2")
    page.fill("#seed", "7.5")
    page.click("#submit")
    expect(page.locator("#seed-error")).to_have_text(
        "seed must be a whole number (leave it empty for a random one), not 7.5"
    )
    expect(page.locator("#duration-error")).to_be_hidden()
    page.fill("#seed", str(2**40))
    page.click("#submit")
    expect(page.locator("#seed-error")).to_have_text("seed must be from 0 to 4294967295, got 1099511627776")
    assert [(b.get("duration"), b.get("seed")) for b in bodies] == [(0, None), (2, 2**40)]  # only whole ones
    assert _total(server) == before
    expect(page.locator("#task-status")).to_have_attribute("data-status", "idle")

    page.fill("#seed", "1e3")  # a number field's way of writing 1000: sent as 1000, not cut to 1
    page.click("#submit")
    expect(page.locator("#task-id")).to_have_text(re.compile(r"^cgt-"))
    assert (bodies[-1]["duration"], bodies[-1]["seed"]) == (2, 1000)
    task = server.api("GET", f"{TASKS}/{page.text_content('#task-id')}").json()
    assert (task["duration"], task["seed"]) == (2, 1000)
    expect(page.locator("#seed-error")).to_be_hidden()
    server.api("DELETE", f"{TASKS}/{task['id']}")
    assert js_errors == []
