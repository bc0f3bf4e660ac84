"""The sender's health per day: bounces and complaints against the emails sent, for
`digest stats`, and the alerts when a day passes a threshold (Gmail and Yahoo block bulk
senders whose complaint rate stays above 0.3%; `complaint_alert_rate` warns at 0.1%).

A bounce or complaint is counted on the day its email was sent (complaints about Monday's
weekly digest arrive on Tuesday, when nothing is sent), once per delivery.
"""

from __future__ import annotations

from datetime import datetime

from digest.config import Config
from digest.store import BounceDay, Store

ALERT_DAYS = 3  # days looked back: reports arrive hours or days after the send


def bounce_stats(store: Store, now: datetime, days: int = 14) -> list[BounceDay]:
    """Per day, newest first: sent, hard and soft bounces, complaints, unsubscribe requests,
    and the rates (`hard_rate`, `complaint_rate`; None on a day nothing was sent)."""
    return store.bounce_days(days, now)


def bounce_stats_json(days: list[BounceDay]) -> list[dict[str, object]]:
    """The same, for `digest stats --json`."""
    return [
        {
            "day": d.day,
            "sent": d.sent,
            "hard": d.hard,
            "soft": d.soft,
            "complaints": d.complaints,
            "unsubscribes": d.unsubscribes,
            "hard_rate": d.hard_rate,
            "complaint_rate": d.complaint_rate,
        }
        for d in days
    ]


def bounce_alerts(config: Config, store: Store, now: datetime) -> list[tuple[str, str, str]]:
    """(key, subject, body) for each recent day whose complaint or hard-bounce rate passed
    its threshold, once per day and kind ever (the key names the day)."""
    cfg = config.bounces
    found = []
    for day in bounce_stats(store, now, ALERT_DAYS):
        checks = (
            ("complaints", day.complaints, day.complaint_rate, cfg.complaint_alert_rate),
            ("hard-bounces", day.hard, day.hard_rate, cfg.hard_alert_rate),
        )
        for what, count, rate, limit in checks:
            if rate is None or rate <= limit:
                continue
            key = f"{what}:{day.day}"
            if store.alert_sent_since(key):  # ever: a day alerts once, not hourly
                continue
            name = what.replace("-", " ")
            found.append(
                (
                    key,
                    f"digest: {name} at {rate:.2%} of the {day.sent} emails sent on {day.day}",
                    f"{count} {name} for the {day.sent} emails sent on {day.day}: {rate:.2%}, "
                    f"above the {limit:.2%} set in [bounces].\n"
                    "Complaints above 0.3% get bulk senders blocked by Gmail and Yahoo; a high "
                    "hard-bounce rate means old or mistyped addresses.\n"
                    "Run `digest stats` and `digest bounces --json` to look closer.",
                )
            )
    return found


BOUNCE_COLUMNS = (
    "day", "sent", "hard", "soft", "complaints", "unsubscribes", "hard %", "complaint %",
)  # fmt: skip


def bounce_rows(days: list[dict[str, object]]) -> list[list[str]]:
    """The rows of `digest stats`' bounce table (under BOUNCE_COLUMNS), from the JSON form."""

    def rate(value: object) -> str:
        """A rate as a percentage; "-" on a day nothing was sent (no rate, not 0%)."""
        return f"{value:.2%}" if isinstance(value, float) else "-"

    return [
        [str(d["day"]), str(d["sent"]), str(d["hard"]), str(d["soft"]), str(d["complaints"]),
         str(d["unsubscribes"]), rate(d["hard_rate"]), rate(d["complaint_rate"])]
        for d in days
    ]  # fmt: skip
