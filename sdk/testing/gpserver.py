"""Test harness shared by the Python SDK's tests and the examples' test: starts the
real ``gp`` binary (``$GP_BIN``) on a free port with a temp data dir, waits for
``/readyz``, creates a tenant and an API key with the admin token, and runs small
real HTTP servers (webhook receivers, scripted API doubles). Standard library only,
so it works in any venv and never depends on the SDK under test."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

ADMIN_TOKEN = "sdk-python-admin-token-0123456789abcdef"
# The master key the test server seals secrets with (test-only).
MASTER_KEY = "1:Z2F0ZXB1bHNlLXRlc3QtbWFzdGVyLWtleS12MS0zMmI="
ALL_SCOPES = [
    "events:write",
    "events:read",
    "endpoints:manage",
    "replay:write",
    "dlq:manage",
    "audit:read",
    "stats:read",
]
READY_WITHIN = 30.0

T = TypeVar("T")


def gp_binary() -> str:
    binary = os.environ.get("GP_BIN")
    if not binary:
        raise RuntimeError(
            "GP_BIN is not set: point it at the gp binary (e.g. GP_BIN=target/debug/gp) to run the integration tests"
        )
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def eventually(check: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    """Polls ``check`` every 25 ms until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.025)


class GpServer:
    """A running ``gp serve`` with a tenant (``tenant_id``) and an all-scopes key (``api_key``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.data_dir = tempfile.mkdtemp(prefix="gp-sdk-py-")
        self.tenant_id = ""
        self.api_key = ""
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls) -> GpServer:
        server = cls()
        try:
            server.spawn()
            server.tenant_id = server.admin("POST", "/v1/tenants", {"name": "sdk-python"})["id"]
            server.api_key = server.create_key(ALL_SCOPES)["key"]
        except BaseException:
            server.stop()
            raise
        return server

    def create_key(self, scopes: Iterable[str]) -> dict[str, Any]:
        """A key of the test tenant with these scopes."""
        body = {"name": "sdk-test", "scopes": list(scopes)}
        key: dict[str, Any] = self.admin("POST", f"/v1/tenants/{self.tenant_id}/keys", body)
        return key

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def spawn(self) -> None:
        """Starts (or restarts) the process on the same port and data dir; returns once ready."""
        env = {
            **os.environ,
            "GATEPULSE_ADMIN_TOKEN": ADMIN_TOKEN,
            "GATEPULSE_MASTER_KEY": MASTER_KEY,
            "GATEPULSE_DELIVERY__ALLOW_PRIVATE_DESTINATIONS": "true",
            "RUST_LOG": "warn",
        }
        self._process = subprocess.Popen(
            [gp_binary(), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + READY_WITHIN
        while True:
            code = self._process.poll()
            if code is not None:
                raise RuntimeError(f"gp exited early with {code}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gp not ready within {READY_WITHIN} s")
            time.sleep(0.025)

    def terminate(self) -> None:
        """SIGTERM and wait for the exit (SIGKILL after 15 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def stop(self) -> None:
        """Stops the server and removes its data dir."""
        self.terminate()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hang: float = 0.0
    """Seconds to wait before answering (to test timeouts)."""


class TestServer:
    """A real HTTP server on a free port that records requests and answers with ``respond``."""

    __test__ = False  # not a pytest test class

    def __init__(self, respond: Callable[[Recorded], Reply]) -> None:
        self.requests: list[Recorded] = []
        self._arrived = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                recorded = Recorded(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                reply = respond(recorded)
                with outer._arrived:
                    outer.requests.append(recorded)
                    outer._arrived.notify_all()
                if reply.hang:
                    time.sleep(reply.hang)
                self.send_response(reply.status)
                for name, value in {"content-type": "application/json", **reply.headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 20.0) -> list[Recorded]:
        """The first ``n`` requests, once they have arrived."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"timed out after {timeout} s: {len(self.requests)} of {n} requests")
            return self.requests[:n]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def scripted(replies: list[Reply]) -> TestServer:
    """Answers ``replies`` in order, then repeats the last one."""
    count = iter(range(1 << 30))
    return TestServer(lambda _req: replies[min(next(count), len(replies) - 1)])


def problem(status: int, code: str, **extra: Any) -> bytes:
    """A problem+json body."""
    doc = {"type": f"https://gatepulse.dev/problems/{code}", "title": "x", "status": status}
    return json.dumps({**doc, "detail": f"{code} detail", "code": code, **extra}).encode()


class Receiver(TestServer):
    """A webhook receiver: records deliveries and answers ``status`` (settable), or the
    statuses queued in ``then`` first."""

    def __init__(self) -> None:
        self.status = 204
        self.then: list[int] = []
        super().__init__(lambda _r: Reply(self.then.pop(0) if self.then else self.status))
