"""Operations endpoints on a real server: /metrics in Prometheus' format (no key, no tenant names or
prompts), /livez, /readyz (database and a live worker)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import start_live, wait_for

TASKS = "/api/v3/contents/generations/tasks"
PROMPT = "Shot 1 (1s): a secret lantern.\nShot 2 (1s): a secret boat. --rs 480p --fps 8"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_jobs_shots_and_workers_without_naming_tenants(tmp_path):
    live = start_live(tmp_path)
    try:
        with live.http(live.alice) as http:
            task_id = http.post(
                TASKS, json={"model": "m", "content": [{"type": "text", "text": PROMPT}]}
            ).json()["id"]
            wait_for(lambda: http.get(f"{TASKS}/{task_id}").json(), lambda t: t["status"] == "succeeded", 90)
        with httpx.Client(base_url=live.url, timeout=30) as anonymous:  # no key needed
            r = anonymous.get("/metrics")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            m = samples(r.text)
            assert m[("yingxi_jobs", (("status", "succeeded"),))] == 1
            assert m[("yingxi_jobs", (("status", "queued"),))] == 0
            assert m[("yingxi_job_duration_seconds_count", ())] == 1
            assert m[("yingxi_shot_duration_seconds_count", ())] == 2  # one per shot
            assert m[("yingxi_shot_duration_seconds_sum", ())] > 0
            assert m[("yingxi_job_retries_total", ())] == 0
            assert m[("yingxi_workers", (("backend", "animatic"),))] == 1
            for secret in ("alice", "bob", "lantern", live.alice):
                assert secret not in r.text
            assert anonymous.get("/livez").json()["status"] == "ok"
            ready = anonymous.get("/readyz")
            assert ready.status_code == 200 and ready.json()["workers"] == 1
    finally:
        live.proc.stop()


def test_an_api_server_without_live_workers_is_not_ready(tmp_path):
    live = start_live(tmp_path, workers=0)
    try:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            assert http.get("/livez").status_code == 200
            ready = http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["workers"] == 0
            assert "no worker" in ready.json()["problems"][0]
    finally:
        live.proc.stop()


def test_json_logs_carry_request_tenant_and_job_ids(tmp_path):
    import json

    live = start_live(tmp_path, log_format="json")
    try:
        with live.http(live.alice) as http:
            r = http.post(TASKS, json={"model": "m", "content": [{"type": "text", "text": "a boat --dur 2 --fps 8"}]},
                          headers={"X-Request-Id": "trace-42"})  # fmt: skip
            assert r.headers["x-request-id"] == "trace-42"
            task_id = r.json()["id"]
            wait_for(lambda: http.get(f"{TASKS}/{task_id}").json(), lambda t: t["status"] == "succeeded", 90)
            own = http.get("/api/v1/health").headers["x-request-id"]
            assert len(own) == 16  # one made up when the client sends none
    finally:
        live.proc.stop()
    lines = [
        json.loads(line)
        for line in (tmp_path / "server.log").read_text().splitlines()
        if line.startswith("{")
    ]
    create = [x for x in lines if x.get("path") == TASKS and x.get("method") == "POST"]
    assert create and create[0]["request_id"] == "trace-42" and create[0]["tenant"] == "alice"
    assert create[0]["job_id"] == task_id and create[0]["status"] == 200 and create[0]["ms"] > 0
    rendered = [x for x in lines if x["logger"] == "yingxi.worker" and "succeeded" in x["message"]]
    assert rendered and rendered[0]["job_id"] == task_id and rendered[0]["request_id"] == "trace-42"
