"""The job store alone: exclusive claims, lease-guarded completion, recovery, attempts, expiry, quotas.

One suite for every `JobQueue` (as dramatiq runs one suite on every broker): each test runs on SQLite and
on a real PostgreSQL server started for the session."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from yingxi.server.keys import check_signature, create_key, hash_key, sign
from yingxi.server.runner import Supervisor
from yingxi.server.settings import ServerSettings
from yingxi.server.store import JobStatus, JobStore, QuotaExceeded, open_queue


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"  # an absolute path: four slashes
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def open_store(queue_url, tmp_path):
    """Opens the test's store; each call is another connection to the same database, as a process has."""
    opened = []

    def open_(clock=time.time):
        opened.append(open_queue(queue_url, tmp_path, clock))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


def make(store: JobStore, tenant: str = "t", **kw):
    return store.create(tenant=tenant, kind="ark", model="m", request={"text": "x"}, max_attempts=3, **kw)


def test_concurrent_claims_take_each_job_exactly_once(tmp_path, open_store):
    store = open_store()
    ids = {make(store).id for _ in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(pid: int) -> None:
        own = open_store()  # its own connection, as a worker process has
        while (got := own.claim(f"w{pid}")) is not None:
            with lock:
                claimed.append(got[0].id)

    threads = [threading.Thread(target=claimer, args=(100 + i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert {j.status for j in store.list("t", limit=100)[0]} == {JobStatus.RUNNING}


def test_a_zombie_cannot_complete_a_job_twice(tmp_path, open_store):
    clock = Clock()
    store = open_store(clock)
    job = make(store)
    _, old = store.claim("w1")
    clock.t += 60  # no heartbeat for longer than the lease
    assert store.recover(lease_seconds=30, ttl_seconds=100) == [job.id]
    _, new = store.claim("w2")
    published = []
    assert not store.finish(job.id, old, {"v": 1}, 100, lambda: published.append("zombie"))
    assert not store.heartbeat(job.id, old) and not store.report_progress(job.id, old, 0.5, 1, 1, "")
    assert store.finish(job.id, new, {"v": 2}, 100, lambda: published.append("worker"))
    assert published == ["worker"]
    done = store.get(job.id)
    assert (done.status, done.attempts, done.result, done.expires_at) == (JobStatus.SUCCEEDED, 2, {"v": 2},
                                                                         clock.t + 100)  # fmt: skip
    assert not store.fail(job.id, new, "X", "late", retry=True, ttl_seconds=1)  # finished: nothing changes


def test_publish_failure_rolls_back_and_the_job_stays_running(tmp_path, open_store):
    store = open_store()
    job = make(store)
    _, lease = store.claim("w1")

    def broken() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.finish(job.id, lease, {}, 10, broken)
    assert store.get(job.id).status == JobStatus.RUNNING and store.heartbeat(job.id, lease)


def test_dead_workers_use_up_attempts_then_the_job_fails(tmp_path, open_store):
    store = open_store()
    job = make(store)
    for attempt in (1, 2, 3):
        got, _ = store.claim("w4242")
        assert got.attempts == attempt
        store.recover(lease_seconds=1e9, ttl_seconds=10, dead_workers=["w4242"])
    failed = store.get(job.id)
    assert failed.status == JobStatus.FAILED and failed.error_code == "InternalServiceError"
    assert "3 attempts" in failed.error_message and store.claim("w1") is None


def test_retryable_failures_requeue_until_attempts_run_out(tmp_path, open_store):
    store = open_store()
    job = make(store)
    for _ in range(2):
        _, lease = store.claim("w1")
        store.fail(job.id, lease, "InternalServiceError", "CUDA out of memory", retry=True, ttl_seconds=10)
        assert store.get(job.id).status == JobStatus.QUEUED
    _, lease = store.claim("w1")
    store.fail(job.id, lease, "InternalServiceError", "CUDA out of memory", retry=True, ttl_seconds=10)
    assert (store.get(job.id).status, store.get(job.id).error_message) == (
        JobStatus.FAILED,
        "CUDA out of memory",
    )


def test_graceful_release_does_not_cost_an_attempt(tmp_path, open_store):
    store = open_store()
    job = make(store)
    store.claim("w7")
    assert store.release(["w7"]) == [job.id]
    assert (store.get(job.id).status, store.get(job.id).attempts) == (JobStatus.QUEUED, 0)


def test_quota_and_cancel(tmp_path, open_store):
    store = open_store()
    a, b = make(store, max_unfinished=2), make(store, max_unfinished=2)
    with pytest.raises(QuotaExceeded):
        make(store, max_unfinished=2)
    make(store, tenant="other", max_unfinished=2)  # quotas are per tenant
    assert (
        store.cancel(a.id, "other", 10) is None and store.get(a.id).status == JobStatus.QUEUED
    )  # not theirs
    assert store.cancel(a.id, "t", 10).status == JobStatus.CANCELLED
    make(store, max_unfinished=2)  # room again
    assert store.claim("w1")[0].id == b.id  # the cancelled job is never claimed


def test_expiry_deletes_outputs_and_marks_expired(tmp_path, open_store, queue_url):
    settings = ServerSettings(data_dir=tmp_path, database_url=queue_url)
    clock = Clock()
    store = open_store(clock)
    done = make(store)
    clock.t += 1
    stale = make(store, queue_seconds=5)
    assert store.claim("w1")[0].id == done.id  # oldest first
    lease = store.get(done.id).lease
    out = settings.tasks_dir / done.id / "out"
    out.mkdir(parents=True)
    (out / "video.mp4").write_bytes(b"x")
    store.finish(done.id, lease, {}, ttl_seconds=10, publish=lambda: None)
    clock.t += 11  # past the outputs' ttl and the queued job's deadline
    expired = {j.id for j in store.expire()}
    assert expired == {done.id, stale.id}
    assert store.get(done.id).status == JobStatus.EXPIRED and store.get(stale.id).status == JobStatus.EXPIRED
    # The supervisor's expiry pass removes files (real clock: a job that expired long ago).
    old = open_store(Clock(1.0))
    job = make(old)
    _, lease = old.claim("w1")
    (settings.tasks_dir / job.id / "out").mkdir(parents=True)
    old.finish(job.id, lease, {}, ttl_seconds=1, publish=lambda: None)
    Supervisor(settings).expire()
    assert not (settings.tasks_dir / job.id).exists() and old.get(job.id).status == JobStatus.EXPIRED


def test_keys_are_stored_hashed_and_signatures_expire(tmp_path: Path, open_store, queue_url):
    key = create_key(tmp_path, "studio-1", queue_url)
    store = open_store()
    assert store.tenant_for(hash_key(key)) == "studio-1" and store.tenant_for(hash_key(key + "x")) is None
    if queue_url.startswith("sqlite"):
        assert key.encode() not in (tmp_path / "jobs.db").read_bytes()
    assert create_key(tmp_path, "studio-1", queue_url) != key
    with pytest.raises(Exception, match="key name"):
        create_key(tmp_path, "../etc")
    secret = b"s" * 32
    sig = sign(secret, "cgt-1/video.mp4", 2000)
    assert check_signature(secret, "cgt-1/video.mp4", 2000, sig, now=1999)
    assert not check_signature(secret, "cgt-1/video.mp4", 2000, sig, now=2001)  # expired
    assert not check_signature(secret, "cgt-2/video.mp4", 2000, sig, now=1999)  # another file


def test_supervisor_restarts_a_crash_looping_worker_with_growing_pauses(tmp_path, monkeypatch):
    """Worker processes are faked: each 'dies' at once; the first restart comes at once, then after 2, 4, 8, ... s."""
    settings = ServerSettings(data_dir=tmp_path)
    sup = Supervisor(settings)
    clock = Clock(100.0)
    monkeypatch.setattr("yingxi.server.runner.time.monotonic", clock)
    spawned = []

    class Dead:
        def __init__(self, pid):
            self.pid, self.exitcode = pid, 1

        def is_alive(self):
            return False

    def spawn(index):
        sup._started[index] = clock()
        spawned.append(clock())
        return Dead(1_000_000 + len(spawned))

    monkeypatch.setattr(sup, "_spawn", spawn)
    sup.workers = [spawn(0)]
    for _ in range(80):  # 40 s of supervisor steps, every 0.5 s
        clock.t += 0.5
        sup.step()
    gaps = [round(b - a, 1) for a, b in zip(spawned[:-1], spawned[1:], strict=True)]
    assert gaps[:5] == [0.5, 2.5, 4.5, 8.5, 16.5] and max(gaps) <= 30.5


def test_a_running_job_past_its_deadline_expires_and_its_worker_cannot_finish(tmp_path, open_store):
    clock = Clock()
    store = open_store(clock)
    job = make(store, queue_seconds=60)
    _, lease = store.claim("w1")
    clock.t += 30
    assert store.expire() == [] and store.heartbeat(job.id, lease)
    clock.t += 31  # past execution_expires_after while rendering
    assert [j.id for j in store.expire()] == [job.id]
    assert store.get(job.id).status == JobStatus.EXPIRED
    assert not store.heartbeat(job.id, lease)
    assert not store.finish(job.id, lease, {}, 100, publish=lambda: pytest.fail("published after expiry"))
    assert store.get(job.id).status == JobStatus.EXPIRED


def test_the_signing_secret_is_never_readable_by_others(tmp_path, monkeypatch):
    import os
    import stat

    from yingxi.server.keys import secret_for

    modes = []  # the secret file's mode at each step that touches it
    real_write, real_chmod = os.write, Path.chmod

    def write(fd, data):
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    def chmod(path, mode, **kw):  # tightening after the bytes are written leaves a window
        modes.append(stat.S_IMODE(path.stat().st_mode))
        return real_chmod(path, mode, **kw)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(Path, "chmod", chmod)
    old_umask = os.umask(0)  # the most permissive umask: the mode must not depend on it
    try:
        secret = secret_for(tmp_path)
    finally:
        os.umask(old_umask)
    assert len(secret) == 32 and modes and set(modes) == {0o600}, [oct(m) for m in modes]
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_task_folders_that_no_job_owns_are_removed_once_old(tmp_path, open_store, queue_url):
    import os

    settings = ServerSettings(data_dir=tmp_path, database_url=queue_url)
    store = open_store()
    owned = make(store)
    for name in (owned.id, "cgt-20200101000000-0badf00d", "cgt-20200101000000-00c0ffee"):
        (settings.tasks_dir / name / "inputs").mkdir(parents=True)
    old = time.time() - 7200
    for name in (owned.id, "cgt-20200101000000-0badf00d"):
        os.utime(settings.tasks_dir / name, (old, old))
    # The old folder without a job goes; the job's folder and a fresh one (a request mid-validation) stay.
    assert Supervisor(settings).remove_orphans() == ["cgt-20200101000000-0badf00d"]
    assert sorted(p.name for p in settings.tasks_dir.iterdir()) == sorted(
        [owned.id, "cgt-20200101000000-00c0ffee"]
    )


def test_the_shared_signing_secret_is_one_for_every_server(queue_url, tmp_path, open_store):
    from yingxi.server.keys import signing_secret

    a, b = open_store(), open_store()
    first, second = signing_secret(a, tmp_path / "a"), signing_secret(b, tmp_path / "b")
    if a.shared:  # in the database: servers with different data folders verify each other's links
        assert first == second and len(first) == 32 and not (tmp_path / "a" / "secret").exists()
    else:  # one machine: the file in the data folder, as before
        assert len(first) == 32 and (tmp_path / "a" / "secret").is_file()


def test_recovery_goes_by_lease_and_named_workers_never_by_local_pids(open_store):
    """A job held by a worker on another machine (its pid means nothing here) stays running while its
    heartbeat is fresh, whatever process has that pid on this host."""
    clock = Clock()
    store = open_store(clock)
    make(store), make(store)
    mine, _ = store.claim("here:1:aaaa")
    theirs, _ = store.claim(f"elsewhere:{2**22 + 7}:bbbb")  # a pid no process here has
    clock.t += 5
    assert store.recover(lease_seconds=30, ttl_seconds=10) == []
    assert store.recover(lease_seconds=30, ttl_seconds=10, dead_workers=["here:1:aaaa"]) == [mine.id]
    assert store.get(theirs.id).status == JobStatus.RUNNING
    clock.t += 31
    assert store.recover(lease_seconds=30, ttl_seconds=10) == [theirs.id]


def test_an_idle_worker_wakes_when_a_job_is_queued(open_store):
    store = open_store()
    waiter = open_store()
    woke = threading.Event()

    def wait() -> None:
        waiter.wait_for_work(20 if store.shared else 0.2)
        woke.set()

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.3)
    make(store)
    thread.join(25)
    assert woke.is_set() and waiter.claim("w1") is not None


def test_unknown_database_urls_are_refused_with_the_accepted_forms(tmp_path):
    for url, word in (("mysql://x/y", "unknown database URL scheme"), ("sqlite://jobs.db", "sqlite:///")):
        with pytest.raises(ValueError, match=word):
            open_queue(url, tmp_path)


def test_partial_outputs_of_a_job_that_failed_with_dead_workers_are_removed(tmp_path, queue_url, open_store):
    settings = ServerSettings(data_dir=tmp_path, database_url=queue_url)
    store = open_store()
    job = make(store)
    out = settings.tasks_dir / job.id / "out"
    out.mkdir(parents=True)
    sup = Supervisor(settings)
    touched = []
    for attempt in (1, 2, 3):
        store.claim(f"h:{attempt}:n")
        (out / f".attempt-{attempt:04x}.mp4.partial-1-2").write_bytes(b"half a film")
        (out / f"attempt-{attempt:04x}.png").write_bytes(b"x")
        touched = sup.store.recover(lease_seconds=1e9, ttl_seconds=10, dead_workers=[f"h:{attempt}:n"])
    assert store.get(job.id).status == JobStatus.FAILED
    sup.clean_failed(touched)
    assert list(out.iterdir()) == []


def test_jobs_per_hour_count_deleted_jobs_and_say_when_to_retry(open_store):
    from yingxi.server.store import Quota

    clock = Clock(60.0 * 1000)  # on a minute boundary
    store = open_store(clock)
    quota = Quota(jobs_per_hour=3)
    first = make(store, quota=quota)
    clock.t += 120
    for _ in range(2):
        make(store, quota=quota)
    store.cancel(first.id, "t", 10)
    assert store.delete(first.id, "t")  # deleting does not give the creation back
    with pytest.raises(QuotaExceeded, match="3 tasks were created in the last hour") as err:
        make(store, quota=quota)
    assert err.value.retry_after == 60 * 61 - 120  # when the first minute leaves the hour
    make(store, tenant="other", quota=quota)  # per tenant
    clock.t += err.value.retry_after
    make(store, quota=quota)  # room again


def test_output_bytes_quota_and_row_retention(open_store):
    from yingxi.server.store import Quota

    clock = Clock()
    store = open_store(clock)
    job = make(store)
    _, lease = store.claim("w1")
    store.finish(job.id, lease, {"bytes": 5000}, ttl_seconds=100, publish=lambda: None)
    assert store.get(job.id).output_bytes == 5000
    with pytest.raises(QuotaExceeded, match="outputs kept"):
        make(store, quota=Quota(output_bytes=5000))
    make(store, quota=Quota(output_bytes=5001))
    clock.t += 101
    assert [j.id for j in store.expire(retention_seconds=1000)] == [job.id]
    make(store, quota=Quota(output_bytes=5000))  # expired outputs no longer count
    clock.t += 500
    store.expire(retention_seconds=1000)
    assert store.get(job.id) is not None  # kept for the retention period
    clock.t += 501
    store.expire(retention_seconds=1000)
    assert store.get(job.id) is None  # then the record goes too


def test_flex_tier_jobs_are_claimed_after_every_default_one(open_store):
    """Ark's service_tier "flex": a flex job queued first still waits for the default jobs queued after it."""
    store = open_store()

    def job(tier: str | None):
        api = {} if tier is None else {"service_tier": tier}
        return store.create(
            tenant="t", kind="ark", model="m", request={"text": "x", "api": api}, max_attempts=3
        )

    flex1, default1, flex2, old, default2 = (
        job("flex"),
        job("default"),
        job("flex"),
        job(None),
        job("default"),
    )
    order = [store.claim("w")[0].id for _ in range(5)]
    assert order == [default1.id, old.id, default2.id, flex1.id, flex2.id]
    assert store.claim("w") is None


def test_a_queued_task_not_started_by_execution_expires_after_expires_as_ark_says(open_store):
    """Ark's execution_expires_after: a task still queued past it is `expired` (with an error saying so) and
    is never claimed; a flex task waiting behind default ones expires the same way."""
    from yingxi.server.views import ark_task

    clock = Clock()
    store = open_store(clock)
    request = {"text": "x", "api": {"service_tier": "flex", "execution_expires_after": 3600}}
    job = store.create(tenant="t", kind="ark", model="m", request=request, max_attempts=3, queue_seconds=3600)
    clock.t += 3599
    assert store.expire() == [] and store.get(job.id).status == JobStatus.QUEUED
    clock.t += 2
    assert [j.id for j in store.expire()] == [job.id]
    assert store.claim("w") is None
    view = ark_task(store.get(job.id), lambda *a, **k: "")
    assert (view["status"], view["service_tier"], view["execution_expires_after"]) == (
        "expired",
        "flex",
        3600,
    )
    assert view["error"]["code"] and "content" not in view
