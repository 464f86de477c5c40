"""Runs every example against the real server, as a user would: the SDKs installed
from their built artifacts (``npm pack`` tarball, wheel) in a clean node project and
a clean venv that sdk/run-tests.sh prepares.

Environment: ``GP_BIN`` (the server), ``EXAMPLES_NODE_DIR`` (a copy of examples/ with
its node_modules and the packed SDK), ``EXAMPLES_PYTHON`` (the clean venv's python).

Each receiver is registered with its folder's instructions (``subscribe`` script),
started as its README says, sent a real delivery by the publish example, and sent
forged requests that it must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sdk" / "testing"))

from gpserver import GpServer, eventually, free_port  # noqa: E402 - after the path tweak


def required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the examples through sdk/run-tests.sh")
    return value


NODE_DIR = Path(required("EXAMPLES_NODE_DIR"))
PYTHON = required("EXAMPLES_PYTHON")


@dataclass(frozen=True)
class Example:
    folder: str
    path: str
    language: str  # which publish example and subscribe script it goes with

    def command(self, port: int) -> list[str]:
        return {
            "express-receiver": ["node", "server.mjs"],
            "nextjs-receiver": [str(NODE_DIR / "node_modules" / ".bin" / "next"), "dev", "--port", str(port)],
            "fastapi-receiver": [PYTHON, "-m", "uvicorn", "app:app", "--port", str(port)],
            "flask-receiver": [PYTHON, "-m", "flask", "--app", "app", "run", "--port", str(port)],
        }[self.folder]

    @property
    def cwd(self) -> Path:
        return (NODE_DIR if self.language == "node" else HERE) / self.folder


RECEIVERS = [
    Example("express-receiver", "/webhooks", "node"),
    Example("nextjs-receiver", "/api/webhooks", "node"),
    Example("fastapi-receiver", "/webhooks", "python"),
    Example("flask-receiver", "/webhooks", "python"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[GpServer]:
    gp = GpServer.start()
    yield gp
    gp.stop()


def client_env(server: GpServer, **extra: str) -> dict[str, str]:
    return {**os.environ, "GATEPULSE_API_KEY": server.api_key, "GATEPULSE_URL": server.base_url, **extra}


def run_script(language: str, script: str, server: GpServer, *args: str) -> str:
    """Runs a publish-folder script (``subscribe`` or ``publish``) and returns its output."""
    if language == "node":
        cmd, cwd = ["node", f"{script}.mjs", *args], NODE_DIR / "node-publish"
    else:
        cmd, cwd = [PYTHON, f"{script}.py", *args], HERE / "python-publish"
    done = subprocess.run(cmd, check=False, cwd=cwd, env=client_env(server), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Process:
    """A receiver process; its output is collected line by line."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip())

    def stop(self) -> None:
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)

    def alive(self) -> bool:
        return self._proc.poll() is None


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def signed(secret: str, body: bytes, msg_id: str = "msg_example_test") -> dict[str, str]:
    """Standard Webhooks headers computed here with the standard library alone."""
    timestamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


@pytest.mark.parametrize("example", RECEIVERS, ids=lambda e: e.folder)
def test_receiver_verifies_real_deliveries(example: Example, server: GpServer) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}{example.path}"
    registered = run_script(example.language, "subscribe", server, url)
    secret = re.search(r"^GATEPULSE_WEBHOOK_SECRET=(whsec_\S+)$", registered, re.MULTILINE)
    endpoint = re.search(r"endpoint (ep_\S+)", registered)
    assert secret, registered
    assert endpoint, registered
    env = {**os.environ, "GATEPULSE_WEBHOOK_SECRET": secret.group(1), "PORT": str(port), "NEXT_TELEMETRY_DISABLED": "1"}
    receiver = Process(example.command(port), example.cwd, env)
    try:
        # Up once it refuses an unsigned request (Next compiles the route on first use).
        body = b'{"id": 1, "forged": true}'

        def refuses_unsigned() -> bool | None:
            assert receiver.alive(), "\n".join(receiver.lines)
            try:
                return post(url, body, {"content-type": "application/json"}) == 400 or None
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return None

        eventually(refuses_unsigned, timeout=180, what=f"{example.folder} to answer")
        # A forged signature and a replayed body are refused; a correctly signed one accepted.
        assert post(url, body, signed("whsec_" + base64.b64encode(b"x" * 32).decode(), body)) == 400
        headers = signed(secret.group(1), body)
        assert post(url, body + b" ", headers) == 400
        assert post(url, body, {**headers, "gatepulse-topic": "test.signed"}) == 204

        published = run_script(example.language, "publish", server)
        event_id = re.search(r"published (evt_\S+)", published)
        assert event_id, published
        line = eventually(
            lambda: next((ln for ln in receiver.lines if re.search(r"verified dlv_\S+ orders\.created", ln)), None),
            timeout=60,
            what=f"{example.folder} to verify the delivery",
        )
        assert "1001" in line

        def delivered() -> bool | None:
            query = f"event_id={event_id.group(1)}&endpoint_id={endpoint.group(1)}"
            data = server_get(server, f"/v1/deliveries?{query}")["data"]
            return (bool(data) and data[0]["status"] == "succeeded") or None

        eventually(delivered, what="the delivery to succeed")
        assert sum("rejected" in ln for ln in receiver.lines) >= 3, "\n".join(receiver.lines)
    finally:
        receiver.stop()


def server_get(server: GpServer, path: str) -> dict[str, object]:
    request = urllib.request.Request(server.base_url + path, headers={"authorization": f"Bearer {server.api_key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        out: dict[str, object] = json.loads(response.read())
        return out


def test_commonjs_entry_point_and_shipped_types() -> None:
    """``require("gatepulse")`` works, and TypeScript type-checks the Next.js route with the shipped types."""
    script = (
        "const { GatePulse, Webhook, ValidationError } = require('gatepulse');"
        "new GatePulse({ apiKey: 'k' }); new Webhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');"
        "if (typeof ValidationError !== 'function') process.exit(1); console.log('cjs ok');"
    )
    done = subprocess.run(["node", "-e", script], check=False, cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "cjs ok", done.stderr
    tsc = NODE_DIR / "node_modules" / ".bin" / "tsc"
    done = subprocess.run(
        [str(tsc), "--noEmit", "-p", "nextjs-receiver"],
        check=False,
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
