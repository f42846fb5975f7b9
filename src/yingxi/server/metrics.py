"""Operations endpoints: Prometheus `/metrics`, `/livez`, `/readyz`. No key is needed, so nothing here
names a tenant or shows a prompt: queue depth by status, durations, retries, workers and their memory.

Every figure is read from the job database when scraped, so each API server of a deployment reports
the same numbers, whichever one Prometheus asks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from starlette.concurrency import run_in_threadpool

from yingxi import __version__
from yingxi.server.jobs import JobQueue, JobStatus

router = APIRouter()


class StoreCollector:
    """Collects from the job store at scrape time (prometheus_client's custom-collector interface)."""

    def __init__(self, store: JobQueue, lease_seconds: float):
        self.store, self.lease_seconds = store, lease_seconds

    def collect(self):
        counts = self.store.counts()
        jobs = GaugeMetricFamily("yingxi_jobs", "Jobs in the store by status", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs
        for what, help_text in (("job", "Seconds from a job's start to its success"),
                                ("shot", "Seconds to shoot one shot")):  # fmt: skip
            buckets, total, count = self.store.histogram(what)
            yield HistogramMetricFamily(
                f"yingxi_{what}_duration_seconds",
                help_text,
                buckets=[(str(b), n) for b, n in buckets] + [("+Inf", count)],
                sum_value=total,
            )
        yield CounterMetricFamily(
            "yingxi_job_retries", "Attempts beyond the first", value=self.store.retries()
        )
        alive = GaugeMetricFamily("yingxi_workers", "Workers with a recent heartbeat", labels=["backend"])
        age = GaugeMetricFamily("yingxi_worker_heartbeat_age_seconds", "Since each worker's last heartbeat",
                                labels=["worker", "backend"])  # fmt: skip
        memory = GaugeMetricFamily("yingxi_worker_device_memory_bytes", "Accelerator memory a worker holds",
                                   labels=["worker", "backend"])  # fmt: skip
        per_backend: dict[str, int] = {}
        for w in self.store.workers():
            age.add_metric([w["name"], w["backend"]], round(w["age"], 3))
            if w["age"] <= self.lease_seconds:
                per_backend[w["backend"]] = per_backend.get(w["backend"], 0) + 1
            if w["device_bytes"] is not None:
                memory.add_metric([w["name"], w["backend"]], w["device_bytes"])
        for backend, n in sorted(per_backend.items()):
            alive.add_metric([backend], n)
        yield from (alive, age, memory)


def _registry(request: Request) -> CollectorRegistry:
    state = request.app.state
    if getattr(state, "metrics", None) is None:
        registry = CollectorRegistry(auto_describe=False)
        c = state.ctx
        registry.register(StoreCollector(c.store, c.settings.lease_seconds))
        state.metrics = registry
    return state.metrics


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(generate_latest, _registry(request))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/livez", include_in_schema=False)
def livez() -> dict:
    """The process answers (no database needed)."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    """Ready when the job database answers and at least one worker has a recent heartbeat."""
    c = request.app.state.ctx
    problems = []
    try:
        c.store.ping()
        alive = [w for w in c.store.workers() if w["age"] <= c.settings.lease_seconds]
        if not alive:
            problems.append(
                "no worker has sent a heartbeat recently (start `yingxi worker` or serve --workers N)"
            )
    except Exception as e:  # the database is down or unreachable
        problems.append(f"the job database does not answer ({type(e).__name__})")
        alive = []
    body = {"status": "ok" if not problems else "unavailable", "workers": len(alive), "problems": problems}
    return JSONResponse(body, status_code=200 if not problems else 503)
