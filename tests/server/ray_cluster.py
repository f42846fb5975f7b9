"""A real two-node Ray cluster on loopback for tests: `ray start --block` twice (a head and a second node,
each its own raylet, named node-a / node-b and tagged with a resource of that name), CPU only.

Ray on Linux replaces 127.0.0.1 by the machine's outward address (`resolve_ip_for_localhost`) unless
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which keeps every component on 127.0.0.1 but also makes `ray start
--address` refuse to add a second node ("multi-node clusters are not supported"). The second node is
therefore started by `python -m tests.server.ray_cluster ARGS`: Ray's own `ray start`, with only that
refusal lifted. Stopped by SIGTERM to the `ray start` process (never `ray stop`, which would end every Ray
on the machine)."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Every component on loopback, no usage report, no token auth (nothing but this machine can reach it), and a dead node noticed within ~2 s instead of ~30 s.
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",  # loopback only; and a token another Ray left in ~/.ray must not switch it on
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_env(src: Path) -> dict[str, str]:
    env = {**os.environ, **RAY_ENV}
    # The worktree's code first (the actors import yingxi; the second node's launcher is this module).
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(src), str(src.parent), env.get("PYTHONPATH", "")) if p
    )
    return env


class RayNode:
    def __init__(self, name: str, proc: subprocess.Popen, log: Path):
        self.name, self.proc, self.log = name, proc, log

    def pids(self) -> list[int]:
        """Every process of this node (they share the `ray start` process's session)."""
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getsid(int(entry.name)) == self.proc.pid:
                        out.append(int(entry.name))
                except (ProcessLookupError, PermissionError):
                    pass
        return out

    def raylet_pid(self) -> int:
        for pid in self.pids():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
            except OSError:
                pass
        raise RuntimeError(f"{self.name} has no raylet; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `ray start --block` then stops its own processes
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of this node's session is left
        except ProcessLookupError:
            pass


class RayCluster:
    """`head` (node-a) and `second` (node-b), one CPU each; Ray Client on `client_url`."""

    def __init__(self, src: Path):
        self.src = src
        self.root = Path(tempfile.mkdtemp(prefix="yx-ray-"))  # short: Ray's socket paths have a length limit
        self.gcs_port, self.client_port = _free_port(), _free_port()
        self.nodes: list[RayNode] = []
        self.start_seconds: dict[str, float] = {}  # how long each `ray start` took (the report's figure)

    @property
    def client_url(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def _launch(self, name: str, cmd: list[str]) -> RayNode:
        log = self.root / f"{name}.log"
        proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=_ray_env(self.src),
                                start_new_session=True, cwd=self.root)  # fmt: skip
        node = RayNode(name, proc, log)
        self.nodes.append(node)
        return node

    def _wait(self, node: RayNode, ready, started: float, timeout: float) -> None:
        while not ready():
            if node.proc.poll() is not None or time.monotonic() > started + timeout:
                raise RuntimeError(f"ray node {node.name} did not start: {node.log.read_text()[-3000:]}")
            time.sleep(0.2)

    @staticmethod
    def _common(cpus: int) -> list[str]:
        return ["--block", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--num-gpus=0",
                "--object-store-memory=78643200", "--disable-usage-stats", "--include-log-monitor=false"]  # fmt: skip

    def _join(self, name: str, cpus: int) -> RayNode:
        """A worker node joining the head (through this module's `start`, which pins it to loopback)."""
        return self._launch(name, [sys.executable, "-m", "tests.server.ray_cluster", "start",
                                   f"--address=127.0.0.1:{self.gcs_port}", f"--node-name={name}",
                                   f'--resources={{"{name.replace("-", "_")}": 1}}', *self._common(cpus)])  # fmt: skip

    def _started(self, node: RayNode, t0: float, timeout: float) -> None:
        self._wait(node, lambda: b"Ray runtime started" in node.log.read_bytes(), t0, timeout)
        self.start_seconds[node.name] = round(time.monotonic() - t0, 1)

    def add_node(self, name: str, cpus: int, timeout: float = 240.0) -> RayNode:
        """Another node joining the running cluster (the cluster grows)."""
        t0 = time.monotonic()
        node = self._join(name, cpus)
        self._started(node, t0, timeout)
        return node

    def start(self, timeout: float = 240.0) -> RayCluster:
        """The head, then the second node as soon as the head's GCS answers (the two start side by side)."""
        ray = str(Path(sys.executable).with_name("ray"))
        t0 = time.monotonic()
        head = self._launch("node-a", [ray, "start", "--head", f"--port={self.gcs_port}", "--node-name=node-a",
                                       f"--ray-client-server-port={self.client_port}", "--include-dashboard=false",
                                       "--dashboard-host=127.0.0.1", f"--temp-dir={self.root / 'ray'}",
                                       '--resources={"node_a": 1}', *self._common(1)])  # fmt: skip

        def gcs_up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.gcs_port), timeout=1).close()
                return True
            except OSError:
                return False

        self._wait(head, gcs_up, t0, timeout)
        second = self._join("node-b", 1)
        for node in (head, second):
            self._started(node, t0, timeout)
        return self

    def node(self, name: str) -> RayNode:
        return next(n for n in self.nodes if n.name == name)

    def pids(self) -> list[int]:
        return [pid for n in self.nodes for pid in n.pids()]

    def stop(self, keep_logs: Path | None = None) -> None:
        for node in reversed(self.nodes):
            node.stop()
        if keep_logs is not None:  # Ray's own logs, for a failure's post-mortem (the temp dir goes)
            logs = self.root / "ray" / "session_latest" / "logs"
            subprocess.run(["cp", "-r", str(logs), str(keep_logs)], check=False, capture_output=True)
            for node in self.nodes:
                subprocess.run(["cp", str(node.log), str(keep_logs)], check=False, capture_output=True)
        subprocess.run(["rm", "-rf", str(self.root)], check=False)


def tcp_endpoints(pids: list[int]) -> list[tuple[str, str, str]]:
    """(local, remote, state) of every TCP socket these processes hold, from /proc (as `ss -tnp` shows)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[9] in inodes:
                out.append(
                    (_addr(f[1], v6), _addr(f[2], v6), {"0A": "LISTEN", "01": "ESTAB"}.get(f[3], f[3]))
                )
    return out


def _addr(hex_addr: str, v6: bool) -> str:
    ip, port = hex_addr.split(":")
    raw = bytes.fromhex(ip)
    if v6:
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        host = socket.inet_ntop(socket.AF_INET6, raw)
    else:
        host = socket.inet_ntop(socket.AF_INET, raw[::-1])
    return f"{host}:{int(port, 16)}"


def is_loopback(endpoint: str) -> bool:
    ip = ipaddress.ip_address(endpoint.rsplit(":", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _ray_start_second_node(argv: list[str]) -> None:
    """`ray start ARGV` with the one-machine guard lifted (see the module's docstring)."""
    import types

    import ray._private.ray_constants as constants
    import ray.scripts.scripts as scripts

    lifted = types.ModuleType("ray_constants")
    lifted.__dict__.update(vars(constants))
    lifted.ENABLE_RAY_CLUSTER = True  # only the CLI's check sees this; services still keep 127.0.0.1
    scripts.ray_constants = lifted
    sys.argv = ["ray", *argv]
    scripts.main()


if __name__ == "__main__":
    _ray_start_second_node(sys.argv[1:])
    print(json.dumps({"exited": True}))
