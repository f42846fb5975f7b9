"""Tenant isolation on every route, in-process (app + one worker run): another tenant's id answers exactly
as a missing one does, list filters never reach across, and signed file URLs die with deletion or expiry."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from tests.server.conftest import TEST_LIMITS, assert_error
from yingxi.server.app import create_app
from yingxi.server.keys import create_key, secret_for, sign
from yingxi.server.settings import ServerSettings
from yingxi.server.worker import Worker

TASKS = "/api/v3/contents/generations/tasks"
ARK = {"model": "m", "content": [{"type": "text", "text": "a kite --dur 2 --rs 480p --fps 8"}]}


def test_another_tenants_ids_are_missing_on_every_route(tmp_path):
    settings = ServerSettings(data_dir=tmp_path, limits=TEST_LIMITS)
    alice_key, bob_key = create_key(tmp_path, "alice"), create_key(tmp_path, "bob")
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {alice_key}"}) as alice, \
         TestClient(app, headers={"Authorization": f"Bearer {bob_key}"}) as bob:  # fmt: skip
        ark_id = alice.post(TASKS, json=ARK).json()["id"]
        video_id = alice.post(
            "/v1/videos", json={"prompt": "a kite", "seconds": "2", "size": "864x480"}
        ).json()["id"]
        film_id = alice.post("/api/v1/films", json={"shots": [{"prompt": "a kite", "duration": 2}]}).json()[
            "id"
        ]
        worker = Worker(settings)
        while worker.run_once():  # render all three
            pass
        task = alice.get(f"{TASKS}/{ark_id}").json()
        assert task["status"] == "succeeded", task
        signed = task["content"]["video_url"].split("testserver", 1)[1]

        for job_id in (ark_id, video_id, film_id):
            for method, path in [
                ("GET", f"{TASKS}/{job_id}"), ("DELETE", f"{TASKS}/{job_id}"),
                ("GET", f"/v1/videos/{job_id}"), ("GET", f"/v1/videos/{job_id}/content"),
                ("DELETE", f"/v1/videos/{job_id}"),
                ("GET", f"/api/v1/films/{job_id}"), ("DELETE", f"/api/v1/films/{job_id}"),
                ("GET", f"/api/v3/files/{job_id}/video.mp4"), ("GET", f"/api/v3/files/{job_id}/last_frame.png"),
            ]:  # fmt: skip
                theirs = bob.request(method, path)
                missing = bob.request(method, path.replace(job_id, job_id[:-8] + "00000000"))
                assert_error(theirs, 404)
                assert (theirs.status_code, theirs.json()["error"]["code"]) == (
                    missing.status_code, missing.json()["error"]["code"])  # fmt: skip
            assert_error(bob.get("/v1/videos", params={"after": job_id}), 400)  # as for an unknown id
        listed = bob.get(TASKS, params=[("filter.task_ids", i) for i in (ark_id, video_id, film_id)]).json()
        assert listed == {"items": [], "total": 0}
        assert bob.get("/v1/videos").json()["data"] == [] and bob.get("/api/v1/films").json()["total"] == 0
        # Bob's attempts changed nothing: all three are alice's and finished.
        assert {alice.get(f"/v1/videos/{i}").json()["status"] for i in (ark_id, video_id, film_id)} == {
            "completed"
        }

        # The signed URL is the capability: it plays without a key, until it expires or the task is deleted.
        assert TestClient(app).get(signed).status_code == 200
        past = int(time.time()) - 1
        resource = f"{ark_id}/video.mp4"
        stale = (
            f"/api/v3/files/{resource}?expires={past}&signature={sign(secret_for(tmp_path), resource, past)}"
        )
        assert_error(TestClient(app).get(stale), 403)
        assert alice.delete(f"{TASKS}/{ark_id}").status_code == 200
        assert_error(TestClient(app).get(signed), 404)
