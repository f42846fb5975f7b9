"""`export: "otio"` (a yingxi extension) on the native film API and Ark tasks: the edit as a zip download."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest

from tests.server.conftest import assert_error, wait_for

otio = pytest.importorskip("opentimelineio")

SCRIPT = {
    "resolution": "480p",
    "fps": 12,
    "shots": [
        {"prompt": "A red kite.", "duration": 1, "dialogue": [{"character": "MEI", "line": "Up!"}]},
        {"prompt": "A hill.", "duration": 1, "transition": "crossfade"},
    ],
}


def test_film_api_export_download_holds_the_timeline_and_clips(live, tmp_path):
    with live.http(live.alice) as http:
        r = http.post("/api/v1/films", json={**SCRIPT, "export": "otio"})
        assert r.status_code == 200, r.text
        done = wait_for(lambda: http.get(f"/api/v1/films/{r.json()['id']}").json(),
                        lambda f: f["status"] not in ("queued", "running"))  # fmt: skip
        assert done["status"] == "succeeded", done["error"]
        assert "signature=" in done["edit_url"] and "signature=" in done["video_url"]
        download = httpx.get(done["edit_url"])  # a plain GET, no key: the URL is signed like the video's
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(download.content))
    assert {"film.otio", "film.shots/shot-01.mp4", "film.shots/shot-02.mp4", "film.shots/line-01.wav"} <= set(
        z.namelist()
    )
    z.extractall(tmp_path)
    timeline = otio.adapters.read_from_file(str(tmp_path / "film.otio"))
    items = list(timeline.video_tracks()[0])
    assert [type(i).__name__ for i in items] == ["Clip", "Transition", "Clip"]
    assert items[1].transition_type == "SMPTE_Dissolve"
    for clip in timeline.find_clips():  # every path in the timeline is inside the zip
        assert (tmp_path / clip.media_reference.target_url).is_file()
    assert [m.name for m in timeline.tracks.markers] == ["MEI: Up!"]


def test_ark_task_export_and_a_misspelt_format(live):
    body = {
        "model": "animatic",
        "content": [{"type": "text", "text": "a kite --resolution 480p --duration 1"}],
    }
    with live.http(live.alice) as http:
        err = assert_error(
            http.post("/api/v3/contents/generations/tasks", json={**body, "export": "otoi"}), 400
        )
        assert err["param"] == "export" and 'did you mean "otio"' in err["message"]
        err = assert_error(http.post("/api/v1/films", json={**SCRIPT, "export": "edll"}), 400)
        assert err["param"] == "export" and 'did you mean "edl"' in err["message"]
        created = http.post("/api/v3/contents/generations/tasks", json={**body, "export": "otio"})
        assert created.status_code == 200, created.text
        url = f"/api/v3/contents/generations/tasks/{created.json()['id']}"
        task = wait_for(lambda: http.get(url).json(), lambda t: t["status"] not in ("queued", "running"))
        assert task["status"] == "succeeded", task.get("error")
        zipped = httpx.get(task["content"]["edit_url"])
    assert zipped.status_code == 200
    assert {"film.otio", "film.shots/shot-01.mp4"} <= set(
        zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
    )
