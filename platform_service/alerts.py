"""Alert delivery: e-mail through SMTP and JSON webhooks (Slack-compatible ``text``).

Delivery never raises: each channel's outcome ("sent" or the error) is returned so it can be
stored with the alert. SMTP runs in a worker thread (``smtplib`` blocks).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import smtplib
from email.message import EmailMessage
from typing import Any

from mlfactory.hub.platform_config import Alerts
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

log = logging.getLogger("mlfactory.service")


class Notifier:
    def __init__(self, alerts: Alerts, platform_name: str = "mlfactory") -> None:
        self.alerts = alerts
        self.platform_name = platform_name

    def recipients(self, alert: dict[str, Any], notify: tuple[str, ...]) -> list[str]:
        email = self.alerts.email
        if email is None:
            return []
        out = list(email.admins) + list(notify)
        if alert["kind"] == "user" and email.user_address:
            out.append(email.user_address.replace("{user}", alert["name"]))
        return sorted(set(out))

    async def deliver(self, alert: dict[str, Any], notify: tuple[str, ...] = ()) -> dict[str, str]:
        outcome: dict[str, str] = {}
        to = self.recipients(alert, notify)
        if to:
            try:
                await asyncio.to_thread(self._send_mail, alert, to)
                outcome["email"] = "sent"
            except (OSError, smtplib.SMTPException) as e:
                log.error("Alert %s: e-mail failed: %s", alert.get("id"), e)
                outcome["email"] = f"failed: {e}"[:200]
        for i, url in enumerate(self.alerts.webhooks):
            try:
                await AsyncHTTPClient().fetch(
                    HTTPRequest(
                        url,
                        method="POST",
                        headers={"Content-Type": "application/json"},
                        body=json.dumps(webhook_body(alert, self.platform_name)),
                        request_timeout=10,
                    )
                )
                outcome[f"webhook{i}"] = "sent"
            except Exception as e:  # any failure is recorded, none stops the others
                log.error("Alert %s: webhook %s failed: %s", alert.get("id"), i, e)
                outcome[f"webhook{i}"] = f"failed: {e}"[:200]
        return outcome

    def _send_mail(self, alert: dict[str, Any], to: list[str]) -> None:
        email = self.alerts.email
        assert email is not None
        msg = EmailMessage()
        msg["Subject"] = (
            f"[{self.platform_name}] {alert['kind']} {alert['name']}: "
            f"{alert['threshold']:.0%} of budget"
        )
        msg["From"] = email.sender
        msg["To"] = ", ".join(to)
        msg.set_content(alert["message"])
        with smtplib.SMTP(email.host, email.port, timeout=20) as smtp:
            if email.starttls:
                smtp.starttls()
            if email.username:
                smtp.login(email.username, os.environ.get(email.password_env, ""))
            smtp.send_message(msg)


def webhook_body(alert: dict[str, Any], platform_name: str) -> dict[str, Any]:
    """Slack reads ``text``; other receivers get the fields as well."""
    return {
        "text": f"[{platform_name}] {alert['message']}",
        "kind": alert["kind"],
        "name": alert["name"],
        "threshold": alert["threshold"],
        "spent": round(alert["spent"], 2),
        "amount": alert["amount"],
        "enforcement": alert["enforcement"],
        "fired_at": alert["fired_at"],
    }
