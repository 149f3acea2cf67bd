"""Real local receivers for the alerting tests: an HTTP webhook endpoint and an SMTP server, on
127.0.0.1, each in a thread of the test process."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out closed its socket: expected in the timeout test


class WebhookReceiver:
    """Records every POSTed JSON body; answers with the next status of ``statuses`` (the last
    one repeats), after ``delay`` seconds."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        self.bodies: list[Any] = []
        self.paths: list[str] = []
        self.statuses, self.delay = list(statuses or [200]), delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                receiver.paths.append(self.path)
                time.sleep(receiver.delay)
                status = (
                    receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                )
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])

    def url(self, path: str = "/services/T000/B000/hook-secret-token") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def webhook_receiver(
    statuses: list[int] | None = None, delay: float = 0.0
) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(statuses, delay)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


class SmtpRecorder:
    """An aiosmtpd handler and authenticator: records each message and each login."""

    def __init__(self, password: str | None = None) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[tuple[str, str]] = []
        self.password = password

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        # handled=False: the server answers 535 itself (the default leaves the client waiting).
        return AuthResult(success=password == self.password, handled=False)


@contextmanager
def smtp_server(password: str | None = None) -> Iterator[tuple[SmtpRecorder, int]]:
    recorder = SmtpRecorder(password)
    port = free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        authenticator=recorder.authenticate,
        auth_require_tls=False,  # a local test server without TLS; the client asks for none here
    )
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()
