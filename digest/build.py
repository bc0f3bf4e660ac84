"""Building, the middle part of the daily job: a subscriber, their matches and an edition in,
one outgoing message out. The one place an email is built, for the daily job, `digest preview
--out` and the web app's confirmation alike. Plans nothing and opens no connection.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from digest.bounces.verp import envelope_sender
from digest.collect import SourceReport
from digest.config import Config
from digest.edition import Edition
from digest.errors import ConfigError, RenderError, SendError, StoreError, TokenError
from digest.match import EditionMatchers, Match, Recommended
from digest.message import Dkim, Outgoing, build_message, message_id_for
from digest.models import Subscriber, SubscriberStatus
from digest.render import Reading, RenderedEmail, Renderer
from digest.send import Clock, Job, SendStats
from digest.store import Delivery, Store
from digest.subscribers import for_confirmation
from digest.tokens import Tokens, feedback_links, subscriber_links

# Failures of our own setup while building a message: the delivery waits for the fix.
OURS = (ConfigError, TokenError, RenderError)


@dataclass(frozen=True, slots=True)
class Counts:
    """The numbers an email states; None is unknown, and then the email does not state it."""

    new_papers: int | None = None  # the edition's new papers
    matched: int | None = None  # the subscriber's matches before their cap


@dataclass(frozen=True, slots=True)
class Built:
    """One email as rendered (for files and previews) and as it goes out."""

    rendered: RenderedEmail
    message: Outgoing


def nothing_new_cause(reports: Sequence[SourceReport], day: date) -> str | None:
    """Why a day brought nothing, when we know: a failed source, a weekend, empty feeds."""
    failed = [r.source for r in reports if r.error]
    if failed:
        return f"a source failed today ({', '.join(failed)}); tomorrow's email will catch up"
    if day.weekday() >= 5:
        return "arXiv announces no new papers on weekends"
    if reports and all(r.fetched == 0 for r in reports):
        return "the sources listed nothing new today (an arXiv holiday?)"
    return None


def envelope_sender_for(config: Config, sub: Subscriber, edition: Edition) -> str | None:
    """MAIL FROM of one delivery: with `[bounces] address`, its signed VERP form naming the
    subscriber and edition (a bounce then says which delivery failed); else None (From).

    Raises:
        TokenError: no secret to sign it with (our setup: the delivery waits)."""
    if not config.bounces.address:
        return None
    return envelope_sender(config.bounces.address, config.secret, sub.id or 0, edition.name)


def feedback_id_for(config: Config, edition: Edition) -> str:
    """`Feedback-ID: campaign:edition:sender-id` (Gmail's feedback loop), when `[mail]
    feedback_id` names the sender; the campaign is the cadence. Never per subscriber."""
    sender_id = config.mail.feedback_id
    return f"{edition.cadence.value}:{edition.name}:{sender_id}" if sender_id else ""


def digest_message(
    config: Config,
    sub: Subscriber,
    rendered: RenderedEmail,
    links: Mapping[str, str],
    message_id: str,
    now: datetime,
    dkim: Dkim | None = None,
    edition: Edition | None = None,
) -> Outgoing:
    """A digest as it goes out: the list headers (RFC 2369/8058) and the subscriber's links;
    with its edition, the VERP envelope sender and Feedback-ID when configured.

    Raises:
        SendError: an address or header this message cannot carry (that delivery's fault).
        ConfigError: the DKIM key does not sign (ours: the delivery waits for the fix).
        TokenError: a VERP sender is configured but there is no secret (ours).
    """
    mail = config.mail
    return build_message(
        sender=mail.from_,
        to=sub.email,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=message_id,
        date=now,
        list_id=mail.list_id,
        unsubscribe_url=links["unsubscribe"],
        unsubscribe_mailto=mail.unsubscribe_mailto or None,
        reply_to=mail.reply_to or None,
        dkim=dkim,
        envelope_sender=envelope_sender_for(config, sub, edition) if edition else None,
        feedback_id=feedback_id_for(config, edition) if edition else "",
    )


def build_digest(
    config: Config,
    renderer: Renderer,
    sub: Subscriber,
    matches: Sequence[Match],
    edition: Edition,
    counts: Counts,
    links: Mapping[str, str],
    now: datetime,
    *,
    cause: str | None = None,
    dkim: Dkim | None = None,
    message_id: str | None = None,
    reading: Reading | None = None,
) -> Built | None:
    """One subscriber's email for an edition: their digest, or with no matches the note the
    `no_matches` policy asks for (None under `skip`: nothing to send). `cause` says why a
    day brought nothing, when known. The Message-ID is stable per (subscriber, edition),
    unless the planned one is given.

    Raises:
        RenderError, ConfigError: our setup (templates, DKIM key); the delivery should wait.
        SendError: this subscriber's address cannot be mailed.
    """
    rendered: RenderedEmail | None
    if matches or (reading and reading.recommended):
        rendered = renderer.digest(
            sub, matches, edition.name, edition.day, counts.new_papers, links,
            matched=counts.matched, reading=reading,
        )  # fmt: skip
    else:
        rendered = renderer.nothing_new(
            sub, edition.name, edition.day, counts.new_papers, cause, links
        )
    if rendered is None:
        return None
    message_id = message_id or message_id_for(
        sub.id or 0, edition.name, config.mail.from_, config.secret
    )
    message = digest_message(config, sub, rendered, links, message_id, now, dkim, edition)
    return Built(rendered, message)


def confirmation_message(
    config: Config, renderer: Renderer, tokens: Tokens, sub: Subscriber, now: datetime
) -> Outgoing:
    """The double opt-in email: one signed link, valid [web].confirm_hours.

    Raises:
        TokenError, RenderError: our setup (secret, templates).
        SendError: the address cannot be mailed.
    """
    token = tokens.make("confirm", sub.id or 0, sub.email)
    url = f"{config.web.base_url.rstrip('/')}/c/{token}"
    shown = for_confirmation(sub)  # never the typed queries: see for_confirmation
    rendered = renderer.confirm(sub.email, url, shown.topics, shown.queries)
    mail = config.mail
    return build_message(
        sender=mail.from_,
        to=sub.email,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=f"<confirm.{sub.id}.{secrets.token_hex(6)}@{mail.list_id}>",
        date=now,
        reply_to=mail.reply_to or None,
    )


class Builder:
    """Turns planned delivery rows into jobs for the sender, one run's worth: the renderer,
    the signing keys and the edition matchers are shared by every email it builds. The
    renderer and the link signer are made on first use, so a setup fault of ours (templates,
    secret) costs each delivery its turn (kept pending), never the run."""

    def __init__(
        self,
        config: Config,
        store: Store,
        renderer: Renderer | None,
        matchers: EditionMatchers,
        clock: Clock,
        *,
        dkim: Dkim | None = None,
        collected: Sequence[SourceReport] = (),
    ) -> None:
        self.config = config
        self.store = store
        self.renderer = renderer
        self.matchers = matchers
        self.clock = clock
        self.dkim = dkim
        self.collected = collected
        self.seconds = 0.0  # spent building, for the run's stage timings
        self._tokens: Tokens | None = None

    def tokens(self) -> Tokens:
        """The link signer.

        Raises:
            TokenError: no usable secret (our setup)."""
        if self._tokens is None:
            self._tokens = Tokens(self.config.secret, self.config.old_secrets)
        return self._tokens

    def _renderer(self) -> Renderer:
        if self.renderer is None:
            self.renderer = Renderer(self.config, self.matchers.topics)
        return self.renderer

    def build(self, row: Delivery, sub: Subscriber) -> Outgoing | None:
        """One planned delivery's message, with its own edition's papers and numbers (None:
        nothing to send).

        Raises:
            RenderError, ConfigError, TokenError: our setup; SendError: the address.
        """
        renderer = self._renderer()
        edition = Edition.parse(row.edition)
        links = subscriber_links(self.tokens(), self.config.web.base_url, sub.id or 0, sub.email)
        reading = self.reading(row, sub)
        recommended = {r.paper.id for r in reading.recommended}
        papers = [p for p in row.papers if p not in recommended]
        matches = self.matchers.matches_for(sub, edition, papers) if papers else []
        # the row's own counts, never this run's: a row planned before they were kept says none
        counts = Counts(row.new_papers, row.matched or None)
        cause = None if row.papers else nothing_new_cause(self.collected, edition.day)
        built = build_digest(
            self.config, renderer, sub, matches, edition, counts, links, self.clock(),
            cause=cause, dkim=self.dkim, message_id=row.message_id, reading=reading,
        )  # fmt: skip
        return None if built is None else built.message

    def reading(self, row: Delivery, sub: Subscriber) -> Reading:
        """The delivery's recommendations as planned (same papers, same reasons on a resend)
        and the subscriber's signed "More/Less like this" links."""
        planned = row.recommended
        found = {p.id: p for p in self.store.papers_by_id([r.paper_id for r in planned])}
        recommended = [
            Recommended(found[r.paper_id], r.score, r.why) for r in planned if r.paper_id in found
        ]
        tokens, base, sid = self.tokens(), self.config.web.base_url, sub.id or 0

        def feedback(paper_id: str) -> tuple[str, str]:
            return feedback_links(tokens, base, sid, sub.email, paper_id)

        return Reading(recommended, feedback)

    def rebind(self, store: Store) -> None:
        """Read and write through `store` from now on: a process forked after planning keeps
        the plan's matchers but must open its own connection."""
        self.store = store
        self.matchers.store = store

    def jobs(
        self, shard: tuple[int, int] | None = None, stats: SendStats | None = None
    ) -> Iterator[Job]:
        """Every due pending delivery, built into a job, streamed a page of rows at a time.

        Building is guarded per delivery: a failure of our setup (secret, DKIM key, templates)
        leaves that delivery pending for the next run; anything else costs that one delivery
        (failed, no bounce). Both are counted in `stats` and named in its failures.

        Raises:
            StoreError: the database failed; nothing more can be built."""
        stats = stats if stats is not None else SendStats()
        last = 0
        now = self.clock()
        while rows := self.store.due_deliveries(now, shard, after_id=last):
            last = rows[-1].id
            people = self.store.subscribers_by_id([r.subscriber_id for r in rows])
            for row in rows:
                job = self._job(row, people.get(row.subscriber_id), stats, now)
                if job is not None:
                    yield job

    def _job(
        self, row: Delivery, sub: Subscriber | None, stats: SendStats, now: datetime
    ) -> Job | None:
        if sub is None or sub.status is not SubscriberStatus.ACTIVE:
            status = sub.status if sub else "removed"
            self.store.mark_skipped(row.id, f"subscriber is {status}", now)
            return None
        started = time.perf_counter()
        try:
            message = self.build(row, sub)
        except StoreError:
            raise
        except OURS as ex:
            reason = f"not built, kept for the next run: {ex}"
            self.store.mark_unbuilt(row.id, reason, now)
            stats.deferred += 1
            stats.failures.append(f"{sub.email}: {reason}")
            return None
        except Exception as ex:  # one broken email must not stop everyone else's
            detail = str(ex) if isinstance(ex, SendError) else f"{type(ex).__name__}: {ex}"
            reason = f"not built: {detail}"
            self.store.mark_failed(row.id, reason, now)
            stats.failed += 1
            stats.failures.append(f"{sub.email}: {reason}")
            return None
        self.seconds += time.perf_counter() - started
        if message is None:
            self.store.mark_skipped(row.id, "no matching papers", now)
            return None
        return Job(
            row.id, row.subscriber_id, row.email, row.edition, row.papers,
            message, row.attempts, row.possible_duplicate,
        )  # fmt: skip
