"""Servers the tests use. The machine's shared RabbitMQ and Redis (`AMQP_URL`, `REDIS_URL`;
`require_server` skips a test, saying why, when one is down); moto's S3-compatible server
(`MotoServer`), started by the tests; and servers a test starts for itself, a private PostgreSQL
cluster and a private RabbitMQ node, each on free ports and a temporary directory, so a test may stop
and restart them without touching the machine's shared servers (which other test runs use at the
same time).

`PrivatePostgres` runs the Debian package's `initdb` and `pg_ctl` (`/usr/lib/postgresql/<n>/bin`);
as root it runs them as the `postgres` user, since PostgreSQL refuses to run as root.
`PrivateRabbit` runs `rabbitmq-server` itself (Debian's `/usr/lib/rabbitmq/bin/rabbitmq-server`, not
the `/usr/sbin` wrapper, which switches to the `rabbitmq` user and its `/var/lib/rabbitmq`) with its
own node name, ports, Mnesia and log dirs, config, plugins file and Erlang cookie.
Both raise `ServerUnavailable` (the tests skip with its message) when the binaries are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

AMQP_URL = os.environ.get("STEMSCRIBE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("STEMSCRIBE_TEST_REDIS", "redis://127.0.0.1:6379/0")
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
"""Credentials moto's server takes (any), for boto3 in the tests and in the processes they start."""


class ServerUnavailable(Exception):
    """The server's binaries are not on this machine (or it would not start): why, for a skip."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def require_server(what: str, url: str, default_port: int) -> None:
    """Skip the test, saying why, when nothing listens at `url`'s host and port."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"{what} is not reachable at {host}:{port} ({exc}); `.ci/run` starts it")


class MotoServer:
    """moto's S3-compatible server (`python -m moto.server`) on a free port; `start` skips the test
    when moto[server] is missing or the server does not come up."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        pytest.importorskip("moto.server", reason="moto[server] is not installed (the dev extra)")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url, timeout=1)
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    pytest.skip(f"moto's server exited with {self.proc.returncode}")
                time.sleep(0.2)
        self.stop()
        pytest.skip(f"moto's server did not start within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _wait(what: str, ready: object, proc: subprocess.Popen[bytes] | None, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise ServerUnavailable(f"{what} did not start within {timeout:.0f} s:\n{tail}")


class PrivatePostgres:
    """A PostgreSQL cluster of its own under `root` (trust authentication, 127.0.0.1, a free port)."""

    def __init__(self, root: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise ServerUnavailable("PostgreSQL's initdb is not installed (Debian: postgresql)")
        self.bin = Path(found[-1]).parent
        self.user: str | None = None
        self._own_root = False
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable(
                    "running as root, and there is no `postgres` user to run as"
                ) from None
            self.user = "postgres"
            # pytest's temporary dirs are root's alone (0700): the cluster gets one of its own
            root = Path(tempfile.mkdtemp(prefix="stemscribe-pg-"))
            shutil.chown(root, user="postgres")
            self._own_root = True
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its `postgres` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            raise ServerUnavailable(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120", "-o", options, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m fast` (clients are disconnected) or `immediate` (a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


RABBIT_SERVERS = ("/usr/lib/rabbitmq/bin/rabbitmq-server",)


class PrivateRabbit:
    """A RabbitMQ node of its own under `root`: node name, AMQP and distribution ports, Mnesia, logs,
    config and Erlang cookie all private; `stop` and `start` again keep its durable queues."""

    def __init__(self, root: Path) -> None:
        server = next((p for p in RABBIT_SERVERS if os.access(p, os.X_OK)), None) or shutil.which(
            "rabbitmq-server"
        )
        if server is None or shutil.which("erl") is None:
            raise ServerUnavailable("rabbitmq-server (and Erlang) is not installed (Debian: rabbitmq-server)")
        self.server = server
        self.root = root
        self.port = free_port()
        self.dist_port = free_port()
        self.name = f"sstest{secrets.token_hex(3)}@localhost"
        self.log = root / "rabbit.out"
        home = root / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        (root / "rabbitmq.conf").write_text("loopback_users = none\n")
        (root / "enabled_plugins").write_text("[].\n")
        (root / "rabbitmq-env.conf").write_text("")
        self.env = {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(root / "plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(root / "rabbit.pid"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout: float = 180.0) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [self.server],
            env=self.env,
            cwd=self.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        _wait(f"RabbitMQ node {self.name}", lambda: port_open(self.port), self.proc, timeout, self.log)

    def stop(self, timeout: float = 120.0) -> None:
        """Stop the node as its init system would (SIGTERM: a clean shutdown), and wait for it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        deadline = time.monotonic() + 30
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)

    def close(self) -> None:
        self.stop()
