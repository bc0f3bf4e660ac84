"""Provider webhooks (issue 14): POST /hooks/ses (SES through SNS), /hooks/postmark and
/hooks/mailgun. Verification and parsing are digest.bounces.webhooks'; the policy is
digest.bounces'. This module only orders the checks, calls them off the event loop and answers.

Answers (JSON): a provider with no credentials configured 404; a wrong Content-Type 415; a
body over MAX_BODY 413; a request that fails verification its 4xx (401 Postmark's auth, 403 a
signature, a topic, a certificate or a stale timestamp, 400 a malformed body), and nothing
changes. A verified event is acted on once, keyed by the provider's event id (SNS MessageId,
Postmark ID, Mailgun event-data.id) in the store's processed_messages: a redelivery of an event
already processed answers 200 "already processed" and changes nothing, because providers
deliver again whatever was not answered with a 2xx (Mailgun for 8 hours). A Mailgun token
used twice is 409: Mailgun signs the token, not the body, so a reused token may carry another
body; it is never believed (a retry signed again under a new token is 200 as above).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from digest.bounces.events import Report, Source
from digest.bounces.policy import ACTED_ON, Action, Outcome
from digest.bounces.process import apply_webhook, mailboxes_for
from digest.bounces.webhooks import (
    SnsMessage,
    WebhookRefused,
    check_content_type,
    check_sns_url,
    load_object,
    parse_mailgun,
    parse_postmark,
    parse_ses,
    verify_basic_auth,
    verify_mailgun,
    verify_sns,
)
from digest.config import Config
from digest.errors import DigestError
from digest.store import Origin, Store
from digest.web.state import Web

log = logging.getLogger("digest.web")
TOKEN_KEY = "webhook:mailgun-token:"


def answer(web: Web, source: Source, status: int, result: str) -> JSONResponse:
    """The JSON answer, counted per provider and status in `web.webhooks`."""
    web.webhooks[f"{source} {status}"] += 1
    return JSONResponse({"result": result}, status_code=status)


def refused(web: Web, source: Source, ex: WebhookRefused) -> JSONResponse:
    """A request that failed a check: its 4xx, one log line naming why, nothing changed."""
    log.warning("webhook %s refused (%d): %s", source, ex.status, ex)
    return answer(web, source, ex.status, str(ex))


def not_configured(web: Web, source: Source) -> JSONResponse:
    """A provider whose credentials are not configured never accepts anything."""
    log.warning("webhook %s called but not configured", source)
    return answer(web, source, 404, f"the {source} webhook is not configured")


def our_fault(web: Web, source: Source, ex: DigestError) -> JSONResponse:
    """A database or network fault of ours: 503, so the provider delivers the event again."""
    log.error("webhook %s failed: %s", source, ex)
    return answer(web, source, 503, "temporary failure, try again later")


async def guarded(web: Web, source: Source, attempt: Callable[[], Awaitable[Response]]) -> Response:
    """A webhook's checks and action: a failed check answers its 4xx, a fault of ours 503."""
    try:
        return await attempt()
    except WebhookRefused as ex:
        return refused(web, source, ex)
    except DigestError as ex:
        return our_fault(web, source, ex)


def use_token(store: Store, token: str, now: datetime) -> bool:
    """Remember a Mailgun token as used; False when it already was."""
    return store.mark_processed(TOKEN_KEY + token, Origin.WEBHOOK, now, "token", "token used")


def act_once(
    store: Store, config: Config, report: Report, event_id: str, now: datetime, token: str = ""
) -> Outcome | None:
    """Apply a verified event once (in the store's thread); None when its Mailgun token was
    used before. The token and the event are recorded in one transaction."""
    with store.write():
        if token and not use_token(store, token, now):
            return None
        return apply_webhook(config, store, report, event_id, now)


async def act(web: Web, report: Report, event_id: str, token: str = "") -> tuple[int, str]:
    """The status and result of acting on a verified report. A report without an event id
    cannot be acted on once: refused when it would change a subscriber, else answered without
    being recorded.

    Raises:
        WebhookRefused: no event id for a report that acts (400), a reused Mailgun token (409).
    """
    now = web.clock()
    reused = WebhookRefused("Mailgun webhook: token already used (replay)", 409)
    if not event_id:
        if report.kind in ACTED_ON:
            raise WebhookRefused(f"{report.source} {report.kind} without an event id", 400)
        if token and not await web.store.call(use_token, token, now):
            raise reused
        return 200, str(Action.IGNORED)
    outcome = await web.store.call(act_once, web.config, report, event_id, now, token)
    if outcome is None:
        raise reused
    log.info("webhook %s event %s: %s, %s", report.source, event_id[:80], report.kind,
             outcome.action)  # fmt: skip
    return 200, str(outcome.action)


def event_id(value: object) -> str:
    """A provider's event id as text: a non-empty string, or an integer (Postmark's ID)."""
    if isinstance(value, bool):  # JSON true is a Python int: never an id
        return ""
    if isinstance(value, int):
        return str(value)
    return value.strip()[:200] if isinstance(value, str) else ""


async def ses(web: Web, request: Request) -> Response:
    """Amazon SES notifications through SNS, and SNS's subscription confirmation."""
    source = Source.SES
    topics = web.config.bounces.sns_topics
    if not topics:
        return not_configured(web, source)

    async def attempt() -> Response:
        check_content_type(source, request.headers.get("content-type"))
        body = await request.body()
        # off the event loop: verifying may fetch the signing certificate over HTTPS
        message = await asyncio.to_thread(
            verify_sns, body, web.sns_certificate, topics, web.clock()
        )
        if message.type == "SubscriptionConfirmation":
            return await confirm_subscription(web, message)
        report = parse_ses(message, mailboxes_for(web.config))
        return answer(web, source, *await act(web, report, message.message_id))

    return await guarded(web, source, attempt)


async def confirm_subscription(web: Web, message: SnsMessage) -> Response:
    """Confirm the SNS subscription of an allowed topic (verify_sns checked the topic and
    the signature) by a GET of its SubscribeURL, on the SNS host pattern only; then record
    the message, so its replay does not GET again.

    Raises:
        WebhookRefused: the URL is not on an SNS host.
        DigestError: the GET failed (503: SNS sends the confirmation again) or the store did.
    """
    url = check_sns_url(message.subscribe_url)
    key = f"webhook:{Source.SES}:{message.message_id}"
    if await web.store.call(Store.is_processed, key):
        return answer(web, Source.SES, 200, str(Action.DUPLICATE))
    await asyncio.to_thread(web.fetch, url)
    log.warning("webhook ses: subscription to %s confirmed", message.topic_arn[:200])
    report = parse_ses(message, mailboxes_for(web.config))
    await web.store.call(act_once, web.config, report, message.message_id, web.clock())
    return answer(web, Source.SES, 200, "subscription confirmed")


async def postmark(web: Web, request: Request) -> Response:
    """Postmark bounce and spam-complaint webhooks, behind HTTP basic auth."""
    source = Source.POSTMARK
    user, password = web.config.bounces.postmark_user, web.config.postmark_password
    if not user or not password:
        return not_configured(web, source)

    async def attempt() -> Response:
        check_content_type(source, request.headers.get("content-type"))
        verify_basic_auth(request.headers.get("authorization"), user, password)
        body = await request.body()
        report = parse_postmark(body, mailboxes_for(web.config))
        id_ = event_id(load_object(body, "Postmark").get("ID"))
        return answer(web, source, *await act(web, report, id_))

    return await guarded(web, source, attempt)


async def mailgun(web: Web, request: Request) -> Response:
    """Mailgun `failed` and `complained` events, signed with the webhook signing key."""
    source = Source.MAILGUN
    key = web.config.mailgun_signing_key
    if not key:
        return not_configured(web, source)

    async def attempt() -> Response:
        check_content_type(source, request.headers.get("content-type"))
        body = await request.body()
        # the token's single use is checked in the store, with the event, so a restart
        # does not forget it: the in-memory set here is only this request's
        event = verify_mailgun(body, key, web.clock(), set())
        report = parse_mailgun(event, mailboxes_for(web.config))
        result = await act(web, report, event_id(event.event.get("id")), event.token)
        return answer(web, source, *result)

    return await guarded(web, source, attempt)


__all__ = ["mailgun", "postmark", "ses"]
