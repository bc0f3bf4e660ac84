"""Reading the configured bounce mailbox to the end: each message classified, acted on by the
policy, then marked, so `digest bounces` and the end of `digest run` share one function.

A mailbox that cannot be read (missing folder, IMAP login refused, a connection dropped) is
an error in the report, never an exception out of `bounces_after_run`: the run has sent its
emails and must still say so. What a hostile message contains is the classifier's business:
it never raises.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from digest.bounces.classify import Mailboxes, classify
from digest.bounces.events import Report
from digest.bounces.mailbox import Imap, ImapSecurity, ImapSettings, Mailbox, MailboxError, Maildir
from digest.bounces.policy import Action, Outcome, Policy, apply
from digest.config import Config
from digest.errors import ConfigError
from digest.store import Origin, Store


@dataclass
class BounceReport:
    """What one reading of the mailbox did: an outcome per message, and what failed."""

    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """The mailbox could not be read to the end (unparseable messages are no failure)."""
        return bool(self.errors)

    def kinds(self) -> Counter[str]:
        """Messages per kind, those already processed in an earlier run left out."""
        return Counter(str(o.kind) for o in self.outcomes if o.action is not Action.DUPLICATE)

    def actions(self) -> Counter[str]:
        """Messages per action taken."""
        return Counter(str(o.action) for o in self.outcomes)

    def summary(self) -> str:
        """One line: messages read, by kind, and what changed."""
        kinds = self.kinds()
        actions = self.actions()
        parts = [f"{len(self.outcomes)} messages"]
        parts += [f"{n} {kind}" for kind, n in sorted(kinds.items())]
        changes = [
            f"{actions[a]} {a}"
            for a in (Action.BOUNCED, Action.UNSUBSCRIBED, Action.DUPLICATE)
            if actions[a]
        ]
        if changes:
            parts.append("subscribers: " + ", ".join(changes))
        if self.errors:
            parts.append(f"{len(self.errors)} errors")
        return "digest bounces: " + ", ".join(parts)


def mailboxes_for(config: Config) -> Mailboxes:
    """Our addresses and the secrets that sign VERP tokens, from the config."""
    return Mailboxes(
        bounce_address=config.bounces.address,
        unsubscribe_address=config.mail.unsubscribe_mailto,
        secret=config.secret,
        old_secrets=config.old_secrets,
    )


def check_bounces_config(config: Config) -> None:
    """What reading the mailbox needs, checked before touching it.

    Raises:
        ConfigError: no mailbox configured, no secret to verify tokens, no IMAP password.
    """
    b = config.bounces
    if not b.mailbox_configured:
        raise ConfigError("[bounces]: set maildir or imap_host to read a bounce mailbox")
    # without the secret no token verifies: every report would be refused, silently useless
    if (b.address or config.mail.unsubscribe_mailto) and not config.secret:
        raise ConfigError("DIGEST_SECRET is not set: the VERP tokens of bounces cannot be verified")
    if b.imap_host and not config.imap_password:
        raise ConfigError(f"DIGEST_IMAP_PASSWORD is not set for {b.imap_user}@{b.imap_host}")


@contextmanager
def open_mailbox(config: Config) -> Iterator[tuple[Mailbox, str]]:
    """The configured mailbox, opened, and the prefix that makes its keys unique."""
    b = config.bounces
    if b.maildir:
        yield Maildir(Path(b.maildir)), "maildir:"
        return
    settings = ImapSettings(
        b.imap_host, b.imap_user, config.imap_password, b.imap_port, b.imap_folder,
        security=ImapSecurity(b.imap_tls),
    )  # fmt: skip
    with Imap(settings) as box:
        yield box, f"imap:{b.imap_user}@{b.imap_host}/{b.imap_folder}:"


def message_key(prefix: str, key: str) -> str:
    """A key that stays the same when the message moves: a Maildir file keeps its unique
    name from new/ to cur/ (only the `:2,` flags change)."""
    if prefix == "maildir:":
        key = key.rpartition("/")[2].partition(":2,")[0]
    return prefix + key


def process_mailbox(
    config: Config, store: Store, now: datetime, mailbox: tuple[Mailbox, str] | None = None
) -> BounceReport:
    """Read every unhandled message of the bounce mailbox, act on it, mark it.

    Raises:
        ConfigError: see check_bounces_config.
    """
    check_bounces_config(config)
    report = BounceReport()
    mailboxes, policy = mailboxes_for(config), Policy.from_config(config)
    try:
        if mailbox is not None:
            drain(mailbox, store, mailboxes, policy, now, report)
        else:
            with open_mailbox(config) as opened:
                drain(opened, store, mailboxes, policy, now, report)
    except MailboxError as ex:  # what was read before the failure stays acted on and counted
        report.errors.append(str(ex))
    return report


def drain(
    opened: tuple[Mailbox, str],
    store: Store,
    mailboxes: Mailboxes,
    policy: Policy,
    now: datetime,
    report: BounceReport,
) -> None:
    """Act on each unhandled message, then mark it; a mark that fails is reported (the
    message is recorded as processed, so the next run only marks it)."""
    box, prefix = opened
    for stored in box.unread():
        classified = classify(stored.data, mailboxes)
        key = message_key(prefix, stored.key)
        # applied (and its key recorded) before the mark: a crash between them never loses it
        report.outcomes.append(apply(store, classified, key, Origin.MAILBOX, now, policy))
        try:
            box.mark_done(stored.key)
        except MailboxError as ex:  # acted on and recorded: the next run skips it
            report.errors.append(str(ex))


def bounces_after_run(config: Config, store: Store, now: datetime) -> BounceReport | None:
    """The end of `digest run`: None when no bounce mailbox is configured; a setup problem
    is an error in the report (the run still reports what it sent)."""
    if not config.bounces.mailbox_configured:
        return None
    try:
        return process_mailbox(config, store, now)
    except ConfigError as ex:
        return BounceReport(errors=[str(ex)])


def apply_webhook(
    config: Config, store: Store, report: Report, event_id: str, now: datetime
) -> Outcome:
    """Act once on a verified provider webhook event (for the web app). `event_id` names
    the event, not the email: the SNS MessageId, Postmark's bounce `ID`, Mailgun's
    `event-data.id`; a bounce and a complaint about one email are two events."""
    key = f"webhook:{report.source}:{event_id}"
    return apply(store, report, key, Origin.WEBHOOK, now, Policy.from_config(config))
