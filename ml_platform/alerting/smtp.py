"""E-mail an alert over SMTP (standard library only): STARTTLS by default, implicit TLS on port
465, login when a user is set."""

from __future__ import annotations

import json
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import ClassVar

from ml_platform.alerting.alert import Alert
from ml_platform.alerting.delivery import Channel, Delivery, redact
from ml_platform.alerting.slack import summary_line


@dataclass(frozen=True)
class SmtpChannel:
    channel: ClassVar[Channel] = "email"
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = True
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0

    @property
    def target(self) -> str:
        return f"smtp://{self.host}:{self.port} -> {len(self.recipients)} recipient(s)"

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[ml_platform] {summary_line(alert)}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        details = json.dumps(alert.details, indent=2, default=str, sort_keys=True)
        msg.set_content(
            f"{alert.title}\n\npipeline: {alert.pipeline}\nkind: {alert.kind}\n"
            f"severity: {alert.severity}\ncreated at: {alert.created_at.isoformat()}\n"
            f"Dagster run: {alert.dagster_run_id or '-'}\n\ndetails:\n{details}\n"
        )
        return msg

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if self.port == 465:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.starttls:
            server.starttls(context=context)
        return server

    def send(self, alert: Alert) -> Delivery:
        try:
            with self._connect() as server:
                if self.user:
                    server.login(self.user, self.password or "")
                server.send_message(self.message(alert))
            return Delivery("email", True, self.target)
        except Exception as e:  # never raised to the caller: reported in the Delivery
            error = redact(f"{type(e).__name__}: {e}", [self.password or ""])
            return Delivery("email", False, self.target, error)
