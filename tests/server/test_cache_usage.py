"""The Ark task's usage names the transformer evaluations a shot ran and a step cache skipped."""

from __future__ import annotations

from yingxi.server.jobs import Job
from yingxi.server.store import JobStatus
from yingxi.server.views import ark_task


def _job(result: dict) -> Job:
    return Job(id="cgt-1", tenant="t", kind="ark", model="wan", request={"fields": {}, "api": {}},
               status=JobStatus.SUCCEEDED, progress=1.0, current_shot=1, total_shots=1, message="", attempts=1,
               max_attempts=3, lease=None, worker=None, heartbeat_at=None, error_code=None, error_message=None,
               result=result, created_at=0.0, updated_at=0.0, started_at=0.0, finished_at=0.0,
               expires_at=None, queue_deadline=None)  # fmt: skip


def test_ark_usage_counts_evaluations_run_and_skipped():
    facts = {"duration": 2.0, "num_frames": 33, "fps": 16, "video": "video.mp4"}
    task = ark_task(_job({**facts, "evaluations": 56, "skipped_evaluations": 24}), lambda *a: "http://x/v")
    assert task["usage"]["evaluations"] == 56 and task["usage"]["skipped_evaluations"] == 24
    plain = ark_task(_job(facts), lambda *a: "http://x/v")  # the animatic: no transformer, no such fields
    assert "evaluations" not in plain["usage"] and "completion_tokens" in plain["usage"]
