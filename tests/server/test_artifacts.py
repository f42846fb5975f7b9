"""The `ArtifactStore` contract on `LocalArtifactStore`: put is atomic (a reader never sees part of a file,
also when the temp file is on another filesystem), open/url/delete, names that are not ours are refused,
and a missing artifact is a 404 through the API."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.server.conftest import app_client, assert_error
from yingxi.server.artifacts import ArtifactMissing, LocalArtifactStore
from yingxi.server.keys import check_signature

JOB = "cgt-20260101000000-0a1b2c3d"


@pytest.mark.parametrize("where", ["same filesystem", "other filesystem"])
def test_put_is_atomic_a_reader_sees_a_whole_version_or_none(tmp_path, where):
    """Rename on one filesystem; copy to a hidden temp name, fsync and rename from another (/dev/shm, a
    tmpfs, against the temp folder's disk)."""
    scratch = tmp_path / "scratch"
    if where == "other filesystem":
        scratch = Path("/dev/shm")
        if not scratch.is_dir() or scratch.stat().st_dev == tmp_path.stat().st_dev:
            pytest.skip("no second filesystem (/dev/shm) on this machine")
    scratch.mkdir(parents=True, exist_ok=True)
    store = LocalArtifactStore(tmp_path / "tasks")
    size = 4 << 20
    versions = {bytes([v]) * size for v in range(1, 7)}
    seen: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                with store.open(JOB, "video.mp4") as f:
                    data = f.read()
            except ArtifactMissing:
                continue
            seen.append(data[:1] if data in versions else b"PARTIAL")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for v in range(1, 7):
            src = scratch / f".yx-attempt-{os.getpid()}-{v}.mp4"
            src.write_bytes(bytes([v]) * size)
            assert store.put(JOB, "video.mp4", src) == size
            assert not src.exists()  # put takes the file
    finally:
        stop.set()
        reader.join()
    assert seen and b"PARTIAL" not in seen
    with store.open(JOB, "video.mp4") as f:
        assert f.read() == bytes([6]) * size
    left = sorted(p.name for p in (tmp_path / "tasks" / JOB / "out").iterdir())
    assert left == ["video.mp4"]  # no temp file of the copy path stays behind


def test_open_url_delete_and_names(tmp_path):
    secret = b"k" * 32
    store = LocalArtifactStore(tmp_path, secret)
    src = tmp_path / "a.png"
    src.write_bytes(b"png bytes")
    store.put(JOB, "last_frame.png", src)
    assert store.local_path(JOB, "last_frame.png").read_bytes() == b"png bytes"
    url = store.url(JOB, "last_frame.png", base_url="http://127.0.0.1:9/", expires_at=4102444800)
    assert url.startswith(f"http://127.0.0.1:9/api/v3/files/{JOB}/last_frame.png?expires=")
    expires = int(url.split("expires=")[1].split("&")[0])
    signature = url.split("signature=")[1]
    assert check_signature(secret, f"{JOB}/last_frame.png", expires, signature, now=0)
    store.delete(JOB, "last_frame.png")
    with pytest.raises(ArtifactMissing):
        store.open(JOB, "last_frame.png")
    with pytest.raises(ArtifactMissing):
        store.local_path(JOB, "last_frame.png")
    store.delete(JOB, "last_frame.png")  # deleting twice is fine
    for job, name in ((JOB, "../secret"), ("../..", "video.mp4"), (JOB, ".hidden"), (JOB, "a/b.mp4")):
        with pytest.raises(ArtifactMissing):
            store.open(job, name)
    (store.scratch(JOB) / ".attempt-1.mp4.partial-9").write_bytes(b"half")
    (store.scratch(JOB) / "attempt-1.png").write_bytes(b"x")
    src.write_bytes(b"kept")
    store.put(JOB, "video.mp4", src)
    assert sorted(store.clean_partials(JOB)) == [".attempt-1.mp4.partial-9", "attempt-1.png"]
    assert [p.name for p in store.scratch(JOB).iterdir()] == ["video.mp4"]
    store.delete(JOB)
    assert not (tmp_path / JOB).exists()


def test_a_missing_artifact_is_a_404_through_the_api(tmp_path):
    from yingxi.server.store import open_queue

    with app_client(tmp_path) as client:
        store = open_queue(None, tmp_path)
        for kind in ("openai", "ark"):  # succeeded, but its files are gone
            job = store.create(tenant="alice", kind=kind, model="m", request={"prompt": "x"}, max_attempts=1)
            _, lease = store.claim("h:1:n")
            store.finish(job.id, lease, {"video": "video.mp4"}, ttl_seconds=3600, publish=lambda: None)
        openai_job = store.list("alice", kinds=["openai"])[0][0]
        gone = assert_error(client.get(f"/v1/videos/{openai_job.id}/content"), 404)
        assert "gone" in gone["message"]
        assert "expired" in assert_error(client.get(f"/api/v3/files/{job.id}/video.mp4"), 404)["message"]
        artifacts = LocalArtifactStore(tmp_path / "tasks")
        src = tmp_path / "v.mp4"
        src.write_bytes(b"not really a film")
        artifacts.put(job.id, "video.mp4", src)
        got = client.get(f"/api/v3/files/{job.id}/video.mp4")
        assert got.status_code == 200 and got.content == b"not really a film"
        assert got.headers["content-type"] == "video/mp4"
        artifacts.delete(job.id, "video.mp4")
        assert_error(client.get(f"/api/v3/files/{job.id}/video.mp4"), 404)
