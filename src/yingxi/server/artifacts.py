"""Where a job's files live: the `ArtifactStore` protocol, and `LocalArtifactStore` on a folder that may be a
shared mount (NFS, a cluster volume) seen by every API server and worker.

Workers publish outputs with `put` (a completed temp file, made visible atomically: a reader sees the whole
file or none), the API serves them with `open`/`local_path` and hands out `url`s (signed, expiring links any
API server of the deployment verifies), and `delete` removes them. A job's inputs (reference images, audio)
are saved under `folder(job_id)` by the API and read from there by the worker.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO, Protocol

OUTPUTS = "out"  # a job's published outputs, and the attempts of its workers before they are published
INPUTS = "inputs"
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class ArtifactMissing(LookupError):
    """No such artifact (never made, expired or deleted): the API answers 404."""


class ArtifactStore(Protocol):
    def put(self, job_id: str, name: str, source: Path) -> int: ...
    def open(self, job_id: str, name: str) -> BinaryIO: ...
    def local_path(self, job_id: str, name: str) -> Path | None: ...
    def url(self, job_id: str, name: str, *, base_url: str, expires_at: float | None = None) -> str: ...
    def delete(self, job_id: str, name: str | None = None) -> None: ...
    def folder(self, job_id: str) -> Path: ...
    def scratch(self, job_id: str) -> Path: ...
    def clean_partials(self, job_id: str) -> list[str]: ...


class LocalArtifactStore:
    """Artifacts as files: ROOT/<job id>/out/<name> (outputs), ROOT/<job id>/inputs/ (what the request sent)."""

    def __init__(self, root: Path, secret: bytes | None = None):
        self.root = Path(root)
        self.secret = secret  # signs `url`s; the API's (see keys.signing_secret)

    def folder(self, job_id: str) -> Path:
        """The job's own folder (its inputs under inputs/): job ids are ours, never a client's path."""
        if not _JOB_ID.match(job_id or ""):
            raise ArtifactMissing(f"no artifacts for job {job_id[:80]!r}")
        return self.root / job_id

    def _path(self, job_id: str, name: str) -> Path:
        if not _NAME.match(name or ""):
            raise ArtifactMissing(f"no artifact named {name[:80]!r}")
        return self.folder(job_id) / OUTPUTS / name

    def scratch(self, job_id: str) -> Path:
        """Where a worker writes an attempt before `put` (beside the outputs: a rename publishes it)."""
        path = self.folder(job_id) / OUTPUTS
        path.mkdir(parents=True, exist_ok=True)
        return path

    def put(self, job_id: str, name: str, source: Path) -> int:
        """Publish the complete file `source` as `name` (replacing an older one) and return its size. A rename
        when both are on one filesystem; else a copy to a hidden temp name beside it, synced, then renamed:
        either way a reader opens the old file, the new one, or nothing, never part of one."""
        dest = self._path(job_id, name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = Path(source)
        if source.stat().st_dev == dest.parent.stat().st_dev:
            os.replace(source, dest)
            return dest.stat().st_size
        tmp = dest.with_name(f".{name}.partial-{secrets.token_hex(4)}")
        try:
            with open(source, "rb") as src, open(tmp, "xb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        source.unlink(missing_ok=True)
        return dest.stat().st_size

    def local_path(self, job_id: str, name: str) -> Path | None:
        """The file itself, so the API can send it with sendfile (ArtifactMissing when there is none)."""
        path = self._path(job_id, name)
        if not path.is_file():
            raise ArtifactMissing(f"{job_id}/{name} is gone (expired, deleted or never made)")
        return path

    def open(self, job_id: str, name: str) -> BinaryIO:
        try:
            return open(self._path(job_id, name), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ArtifactMissing(f"{job_id}/{name} is gone (expired, deleted or never made)") from None

    def url(self, job_id: str, name: str, *, base_url: str, expires_at: float | None = None) -> str:
        """A signed link to GET the artifact without a key (through any API server sharing the secret)."""
        from yingxi.server.views import signed_url_maker

        if self.secret is None:
            raise RuntimeError("this artifact store was opened without the URL-signing secret")
        self._path(job_id, name)  # the same names only
        return signed_url_maker(base_url, self.secret)(job_id, name, expires_at)

    def delete(self, job_id: str, name: str | None = None) -> None:
        """One artifact, or (name None) everything of the job, its inputs too. Missing is not an error."""
        if name is not None:
            self._path(job_id, name).unlink(missing_ok=True)
        else:
            shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def clean_partials(self, job_id: str) -> list[str]:
        """Remove what workers left of unpublished attempts (a worker killed mid-render never cleans up)."""
        out = self.folder(job_id) / OUTPUTS
        if not out.is_dir():
            return []
        removed = []
        for leftover in out.iterdir():
            if leftover.name.startswith(("attempt-", ".attempt-", ".")) and leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed.append(leftover.name)
        return removed


def open_artifacts(tasks_dir: Path, secret: bytes | None = None) -> ArtifactStore:
    """The deployment's artifact store: the tasks folder (a shared mount when API servers and workers are on
    several machines)."""
    return LocalArtifactStore(tasks_dir, secret)


def artifact_response(artifacts: ArtifactStore, job_id: str, name: str, media_type: str, **kwargs):
    """The HTTP answer with the artifact's bytes: sendfile for a local file, else streamed from `open`.
    ArtifactMissing propagates (the routes answer 404)."""
    from fastapi.responses import FileResponse, StreamingResponse

    path = artifacts.local_path(job_id, name)
    if path is not None:
        return FileResponse(path, media_type=media_type, **kwargs)
    f = artifacts.open(job_id, name)

    def chunks():
        with f:
            while block := f.read(1 << 20):
                yield block

    headers = dict(kwargs.get("headers") or {})
    if kwargs.get("filename"):
        headers["Content-Disposition"] = f'attachment; filename="{kwargs["filename"]}"'
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)
