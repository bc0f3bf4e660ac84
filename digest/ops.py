"""Operating the service: statistics, the doctor's checks, the preflight of `run`, `send` and
`serve`, and alerts to the admin.

Library functions returning data; the CLI prints them and the daily job calls `alerts`.
An alert is sent once per problem per day, never once per failure.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from digest.bounces.health import bounce_alerts, bounce_stats, bounce_stats_json
from digest.collect import SourceReport
from digest.config import Config, load_topics
from digest.errors import ConfigError, DigestError, RenderError, TokenError
from digest.message import Dkim, address_of, build_message, check_dkim
from digest.models import Topic
from digest.query import parse
from digest.render import Renderer
from digest.send import OutboxTransport, SendStats, Transport, smtp_hello, transport_for
from digest.store import Store
from digest.tokens import Tokens

MIN_SECRET = 32  # `run`, `send` and `serve` refuse a shorter DIGEST_SECRET


def load_dkim(config: Config) -> Dkim | None:
    """The configured DKIM key, read once per run (None: the relay signs, or nobody does).

    Raises:
        ConfigError: only some of the three DKIM settings are given, or the key file cannot
            be read.
    """
    mail = config.mail
    wanted = [mail.dkim_selector, mail.dkim_domain, mail.dkim_key_file]
    if not any(wanted):
        return None
    if not all(wanted):
        raise ConfigError(
            "[mail]: DKIM needs dkim_selector, dkim_domain and dkim_key_file together"
        )
    try:
        key = Path(mail.dkim_key_file).read_bytes()
    except OSError as ex:
        raise ConfigError(f"[mail].dkim_key_file {mail.dkim_key_file}: {ex.strerror or ex}") from ex
    return Dkim(mail.dkim_selector, mail.dkim_domain, key)


def preflight(config: Config, topics: dict[str, Topic], *, outbox: bool = True) -> None:
    """What `run`, `send` and `serve` need, checked before they touch anything, so a setup
    mistake refuses to start (ConfigError) instead of failing every delivery: the secret
    (set, at least 32 characters), the DKIM key (loads and signs), the email templates and,
    without SMTP, the outbox folder.

    Raises:
        ConfigError: naming what to fix; the command exits 2 and no edition is consumed.
    """
    try:
        Tokens(config.secret, config.old_secrets)  # unset: its message says how to make one
        if len(config.secret) < MIN_SECRET:
            raise ConfigError(
                f"DIGEST_SECRET is {len(config.secret)} characters; at least {MIN_SECRET} are "
                "needed (python3 -c 'import secrets; print(secrets.token_hex(32))')"
            )
        dkim = load_dkim(config)
        if dkim is not None:
            check_dkim(dkim)
        Renderer(config, topics)
    except (TokenError, RenderError) as ex:
        raise ConfigError(str(ex)) from ex
    if outbox and not config.smtp.host:
        OutboxTransport(config.outbox.path)


@dataclass(frozen=True)
class Check:
    """One verdict of `digest doctor`: ok, warn or fail, and what was seen."""

    name: str
    verdict: str  # ok | warn | fail
    detail: str


def stats(store: Store, now: datetime, days: int = 14) -> dict[str, Any]:
    """What `digest stats` shows, as data."""
    return {
        "subscribers": store.count_subscribers(),
        "deliveries": store.delivery_counts(),
        "sends_per_day": store.sends_per_day(days, now),
        "recent_failures": store.recent_failures(10),
        "top_topics": store.topic_counts(),
        "papers": store.count_papers(),
        "sources": store.all_source_states(),
        "bounces_per_day": bounce_stats_json(bounce_stats(store, now, days)),
    }


async def _check_smtp(config: Config) -> Check:
    """Connect and EHLO only: proves the host, port and TLS without sending or logging in."""
    smtp = config.smtp
    if not smtp.host:
        return Check("smtp", "ok", f"no host set: emails go to the outbox {config.outbox.path}")
    try:
        greeting = await smtp_hello(smtp)
    except DigestError as ex:
        return Check("smtp", "fail", str(ex))
    return Check("smtp", "ok", f"{smtp.host}:{smtp.port} answered EHLO: {greeting}")


def doctor(config: Config, store_path: str | None = None) -> list[Check]:
    """Config, database, SMTP (connect and EHLO only), secret, base URL, topics, sources."""
    checks = [Check("config", "ok", str(config.path or "built-in defaults"))]
    try:
        with Store(store_path or config.database.path) as store:
            verdict = store.integrity()
            mode = store.journal_mode()
            detail = (
                f"{store.path}: schema v{store.schema_version()}, {mode}, integrity {verdict}, "
                f"{store.count_papers()} papers"
            )
            checks.append(Check("database", "ok" if verdict == "ok" else "fail", detail))
            failing = [s for s in store.all_source_states() if s.failures]
            for state in failing:
                checks.append(
                    Check(f"source {state.source}", "warn",
                          f"failed {state.failures} run(s) in a row: {state.last_error}")
                )  # fmt: skip
    except DigestError as ex:
        checks.append(Check("database", "fail", str(ex)))
    checks.append(asyncio.run(_check_smtp(config)))
    try:
        Tokens(config.secret, config.old_secrets)
        if len(config.secret) >= MIN_SECRET:
            checks.append(Check("secret", "ok", f"DIGEST_SECRET set ({len(config.secret)} chars)"))
        else:
            checks.append(Check("secret", "fail", f"DIGEST_SECRET has {len(config.secret)} "
                                f"chars; run, send and serve need {MIN_SECRET}+"))  # fmt: skip
    except DigestError as ex:
        checks.append(Check("secret", "fail", str(ex)))
    dkim = _check_dkim(config)
    if dkim is not None:
        checks.append(dkim)
    url = urlsplit(config.web.base_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        checks.append(Check("base url", "fail", f"{config.web.base_url!r} is not absolute"))
    # localhost is right for the outbox demo, wrong once real mail goes out
    elif url.hostname in ("127.0.0.1", "localhost") and config.smtp.host:
        checks.append(Check("base url", "warn", f"{config.web.base_url}: links in real emails "
                                                "will point at localhost"))  # fmt: skip
    elif url.scheme != "https":
        checks.append(Check("base url", "warn", f"{config.web.base_url}: use https in production"))
    else:
        checks.append(Check("base url", "ok", config.web.base_url))
    try:
        address_of(config.mail.from_)
        checks.append(Check("from", "ok", config.mail.from_))
    except DigestError as ex:
        checks.append(Check("from", "fail", str(ex)))
    checks.append(_check_topics(config))
    enabled = [s.name for s in config.sources if s.enabled]
    checks.append(
        Check("sources", "ok" if enabled else "fail", ", ".join(enabled) or "none enabled")
    )
    if not config.mail.postal_address:
        checks.append(Check("postal address", "warn", "[mail].postal_address is empty: bulk "
                                                      "senders must show one"))  # fmt: skip
    return checks


def _check_dkim(config: Config) -> Check | None:
    """The key loads and signs a test message; the detail is the TXT record to publish."""
    mail = config.mail
    if not (mail.dkim_selector or mail.dkim_domain or mail.dkim_key_file):
        return None
    try:
        key = load_dkim(config)
        record = check_dkim(key) if key else ""
    except DigestError as ex:
        return Check("dkim", "fail", str(ex))
    return Check("dkim", "ok", f"signs; publish: {record}")


def _check_topics(config: Config) -> Check:
    """The topics file loads and every preset's query parses (a bad one would fail its
    subscribers' matching at send time)."""
    try:
        topics = load_topics(config.topics_path)
        for topic in topics.values():
            try:
                parse(topic.query)
            except DigestError as ex:
                return Check("topics", "fail", f"{config.topics_path}: [{topic.name}]: {ex}")
    except DigestError as ex:
        return Check("topics", "fail", str(ex))
    return Check("topics", "ok", f"{len(topics)} topics in {Path(config.topics_path).name}")


def alerts(
    config: Config,
    store: Store,
    collected: Sequence[SourceReport],
    sent: SendStats,
    now: datetime,
) -> list[tuple[str, str, str]]:
    """(key, subject, body) of what deserves a person's attention after a run and has not
    been reported in the last day."""
    cfg = config.alerts
    found = []
    for report in collected:
        state = store.get_source_state(report.source)
        if report.error and state.failures >= cfg.source_failures:
            found.append(
                (
                    f"source:{report.source}",
                    f"digest: source {report.source} has failed {state.failures} runs in a row",
                    f"The last error was:\n\n  {state.last_error}\n\nLast success: "
                    f"{state.last_success.isoformat() if state.last_success else 'never'}.\n"
                    "Run `digest doctor` and "
                    f"`digest collect --source {report.source}` to look closer.",
                )
            )
    # skipped deliveries (the subscriber left) are not failures and do not dilute the rate
    attempted = sent.sent + sent.failed + sent.deferred + sent.errors
    bad = sent.failed + sent.deferred + sent.errors
    if attempted and bad / attempted > cfg.failure_rate:
        failures = "\n".join(f"  {f}" for f in sent.failures[:20])
        found.append(
            (
                f"run:{now.date().isoformat()}",
                f"digest: {bad} of {attempted} deliveries failed or were deferred today",
                f"More than {cfg.failure_rate:.0%} of today's deliveries did not go out.\n"
                f"First failures:\n{failures}\n\nRun `digest doctor` and `digest stats`.",
            )
        )
    found.extend(bounce_alerts(config, store, now))
    since = now - timedelta(days=1)
    return [a for a in found if not store.alert_sent_since(a[0], since)]


async def send_alerts(
    config: Config,
    store: Store,
    found: Sequence[tuple[str, str, str]],
    now: datetime,
    transport: Transport | None = None,
) -> int:
    """One email per problem to [alerts].admin_email; recorded so tomorrow's run is quiet
    about it unless it is still there."""
    if not config.alerts.admin_email or not found:
        return 0
    sent = 0
    async with transport_for(config, transport) as opened:
        for key, subject, body in found:
            message = build_message(
                sender=config.mail.from_,
                to=config.alerts.admin_email,
                subject=subject,
                text=body + "\n",
                html=None,
                # random, not per edition: a repeat alert on another day is a new message
                message_id=f"<alert.{secrets.token_hex(8)}@{config.mail.list_id}>",
                date=now,
            )
            result = await opened.send(message)
            if result.ok:  # an alert that did not go out is tried again next run
                store.record_alert(key, subject, now)
                sent += 1
    return sent
