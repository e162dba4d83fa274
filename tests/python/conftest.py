"""Black-box harness: start chat-local on a free loopback port and hand tests the official
Python SDK pointed at it (plus raw-HTTP helpers for auth tests)."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
import requests
import websocket
from stream_chat import StreamChat

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("CHAT_LOCAL_BIN", ROOT / "target" / "debug" / "chat-local"))


class JsonEndpoint:
    """A loopback endpoint standing in for an app's handler (before-send hook, custom action
    handler): records each call as (body bytes, headers) and answers what `respond(doc)` returns,
    `(status, answer)` with `answer` a dict or None for an empty body."""

    def __init__(self, respond):
        self.calls = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls.append((body, self.headers))
                status, answer = respond(json.loads(body))
                out = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/handler"

    def close(self):
        self.httpd.shutdown()


@contextlib.contextmanager
def private_app(prefix):
    """chat-local with an app of its own (for tests that change app settings); yields its SDK
    client."""
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: build it with `cargo build --bin chat-local`")
    data_dir = tempfile.mkdtemp(prefix=f"chat-local-{prefix}-")
    srv = LocalServer(data_dir, prefix + uuid.uuid4().hex[:6], prefix + "-secret-" + uuid.uuid4().hex)
    srv.start()
    try:
        yield srv.client()
    finally:
        srv.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def read_until(ws, done, seconds=3):
    """Frames from a socket until `done(frame)` or `seconds` pass."""
    frames, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ws.settimeout(left)
        try:
            frame = json.loads(ws.recv())
        except (websocket.WebSocketTimeoutException, websocket.WebSocketConnectionClosedException):
            break
        frames.append(frame)
        if done(frame):
            break
    return frames


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """One chat-local process on a data directory; restartable on the same directory."""

    def __init__(self, data_dir, api_key, api_secret, extra_args=(), env=None):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.api_key = api_key
        self.api_secret = api_secret
        self.proc = None
        self.url = None

    def start(self):
        port = free_port()
        env = dict(os.environ, RUST_LOG="warn", **self.extra_env)
        env.pop("CHAT_API_KEY", None)
        env.pop("CHAT_API_SECRET", None)
        if self.api_key is not None:
            env.update(CHAT_API_KEY=self.api_key, CHAT_API_SECRET=self.api_secret)
        self.log_path = Path(self.data_dir) / "server.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(BINARY), "--port", str(port), "--data-dir", str(self.data_dir), *self.extra_args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chat-local exited with {self.proc.returncode}; see {self.data_dir}/server.log")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    self.printed = self.read_printed()
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("chat-local did not become healthy within 30 s")

    def read_printed(self):
        """The `name: value` lines chat-local printed on start (api_key, api_secret, ...)."""
        self.log.flush()
        printed = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            if ":" in line and not line.startswith(" "):
                key, _, value = line.partition(":")
                printed[key.strip()] = value.strip()
        return printed

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def client(self):
        return StreamChat(api_key=self.api_key, api_secret=self.api_secret, base_url=self.url, timeout=10)

    def user_token(self, user_id, **claims):
        return jwt.encode({"user_id": user_id, **claims}, self.api_secret, algorithm="HS256")

    def connect_socket(self, user_id):
        """A WebSocket as the JS client opens it; returns the socket and its hello frame."""
        query = urllib.parse.urlencode(
            {
                "json": json.dumps({"user_id": user_id, "user_details": {"id": user_id}, "client_request_id": str(uuid.uuid4())}),
                "api_key": self.api_key,
                "authorization": self.user_token(user_id),
                "stream-auth-type": "jwt",
            }
        )
        ws = websocket.create_connection(self.url.replace("http", "ws", 1) + "/connect?" + query, timeout=5)
        hello = json.loads(ws.recv())
        assert hello["type"] == "health.check"
        return ws, hello

    def request(self, method, path, token=None, auth_type="jwt", api_key=None, **kwargs):
        """Raw HTTP as a client SDK sends it."""
        headers = {"Content-Type": "application/json", "stream-auth-type": auth_type}
        if token is not None:
            headers["Authorization"] = token
        params = dict(kwargs.pop("params", {}) or {})
        params.setdefault("api_key", self.api_key if api_key is None else api_key)
        return requests.request(method, self.url + path, headers=headers, params=params, timeout=10, **kwargs)


@pytest.fixture(scope="session")
def server():
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: build it with `cargo build --bin chat-local`")
    data_dir = tempfile.mkdtemp(prefix="chat-local-test-")
    srv = LocalServer(data_dir, "testkey" + uuid.uuid4().hex[:6], "testsecret-" + uuid.uuid4().hex)
    srv.start()
    yield srv
    srv.stop()
    # A panic in a request handler shows to the client only as a dropped connection: show it.
    log = Path(data_dir, "server.log").read_text(errors="replace")
    if "panicked" in log:
        print("\nchat-local panicked during the tests:\n" + log[log.index("panicked") - 200 :][:4000])
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def client(server):
    return server.client()


@pytest.fixture
def user_id():
    return "u-" + uuid.uuid4().hex[:12]


@pytest.fixture
def restartable():
    """A private server whose data directory outlives restarts."""
    data_dir = tempfile.mkdtemp(prefix="chat-local-restart-")
    srv = LocalServer(data_dir, "restartkey", "restartsecret-" + uuid.uuid4().hex)
    yield srv
    srv.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
