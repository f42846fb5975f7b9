"""`yingxi keys create` and `yingxi serve` as an operator runs them: real processes, a real HTTP round trip."""

import socket
import subprocess
import sys
import time

import httpx

from tests.e2e.helpers import decode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_and_keys_from_the_command_line(tmp_path):
    data = tmp_path / "data"
    key = subprocess.run([sys.executable, "-m", "yingxi.cli", "keys", "create", "--name", "studio-a", "--data-dir", str(data)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert key.returncode == 0, key.stderr
    api_key = key.stdout.strip()
    assert len(api_key) > 20 and "\n" not in api_key
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "yingxi.cli", "serve", "--port", str(port), "--data-dir", str(data)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {api_key}"}
        for _ in range(150):
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(f"{base}/api/v3/contents/generations/tasks", timeout=5).status_code == 401
        body = {
            "model": "animatic",
            "content": [{"type": "text", "text": "Shot 1 (1s, pan left): a kite --resolution 480p"}],
        }
        created = httpx.post(
            f"{base}/api/v3/contents/generations/tasks", json=body, headers=headers, timeout=10
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        for _ in range(300):
            task = httpx.get(
                f"{base}/api/v3/contents/generations/tasks/{task_id}", headers=headers, timeout=5
            ).json()
            if task["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        assert task["status"] == "succeeded", task
        video = httpx.get(task["content"]["video_url"], headers=headers, timeout=10)
        assert video.status_code == 200
        (tmp_path / "v.mp4").write_bytes(video.content)
        frames, fps, _, _ = decode(tmp_path / "v.mp4")
        assert frames.shape == (24, 480, 864, 3) and fps == 24
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
