"""An example notifier for hooks: on_failure = ["notify"] runs it with the failed run's facts.

It always prints the message (so it lands in its run's log: jobctl logs notify). It also
- POSTs {"text": ..., "facts": {...}} as JSON to NOTIFY_WEBHOOK_URL (Slack, Mattermost and
  most chat webhooks read "text"), when that is set;
- mails it to NOTIFY_MAIL_TO through the SMTP server at NOTIFY_SMTP_HOST (default localhost),
  when that is set.
Unconfigured, it does nothing else: nothing leaves the machine. Set the variables in the
notify job's env (or its env_file), not here.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import sys
import urllib.request
from email.message import EmailMessage

EVENTS = ("FAILED", "SUCCEEDED", "RETRIED")


def facts(env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The event (FAILED, SUCCEEDED, RETRIED) and its facts, without the prefix."""
    for event in EVENTS:
        prefix = f"JOBD_{event}_"
        found = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
        if found:
            return event, found
    return "UNKNOWN", {}


def message(event: str, f: dict[str, str], host: str) -> str:
    job = f.get("job", "?")
    if f.get("state") == "stale":
        return f"[jobd@{host}] job {job} is stale: {f.get('message', '')}"
    what = {
        "FAILED": f.get("state", "failed"),
        "SUCCEEDED": "succeeded",
        "RETRIED": "failed and is being retried",
    }.get(event, event.lower())
    text = f"[jobd@{host}] job {job} run {f.get('run_id', '?')} {what}"
    if f.get("exit_code"):
        text += f" (exit {f['exit_code']})"
    if f.get("message"):
        text += f": {f['message']}"
    if f.get("log"):
        text += f"\nlog: {f['log']}  (jobctl logs {f.get('run_id', job)})"
    return text


def main() -> int:
    env = dict(os.environ)
    event, f = facts(env)
    host = socket.gethostname()
    text = message(event, f, host)
    print(text)
    sent = []
    url = env.get("NOTIFY_WEBHOOK_URL")
    if url:
        body = json.dumps({"text": text, "event": event.lower(), "facts": f}).encode()
        req = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
        sent.append("webhook")
    to = env.get("NOTIFY_MAIL_TO")
    if to:
        mail = EmailMessage()
        mail["Subject"] = text.splitlines()[0]
        mail["From"] = env.get("NOTIFY_MAIL_FROM", f"jobd@{host}")
        mail["To"] = to
        mail.set_content(text + "\n")
        with smtplib.SMTP(env.get("NOTIFY_SMTP_HOST", "localhost"), timeout=10) as smtp:
            smtp.send_message(mail)
        sent.append("mail")
    if not sent:
        print(
            "notify: NOTIFY_WEBHOOK_URL and NOTIFY_MAIL_TO are unset: only logged", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
