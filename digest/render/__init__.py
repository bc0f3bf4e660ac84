"""Emails as (subject, html, text): jinja2 templates, CSS inlined once per template at load,
cards cached across subscribers, subject lines. Knows nothing of SMTP or message headers.

Feed text is only ever escaped by the templates (autoescape); links that are not http(s) are
dropped; nothing here builds HTML out of feed text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from email.utils import parseaddr
from typing import Any

from jinja2 import TemplateError

from digest.config import Config
from digest.errors import RenderError
from digest.match import Match, Recommended
from digest.models import Subscriber, Topic
from digest.render.cache import CardCache
from digest.render.cards import (
    Card,
    Group,
    build_card,
    card_capacity,
    paper_card,
    paper_links,
    why_lines,
)
from digest.render.digests import DigestFrames, filled
from digest.render.inline import card_template, inline_css, load_templates, templates_dir
from digest.render.text import (
    FULL_CARDS,
    FULL_CARDS_LONG,
    LONG_EMAIL,
    MAX_LABEL,
    MAX_SUBJECT,
    RenderedEmail,
    and_list,
    authors_line,
    clean,
    edition_label,
    nothing_new_note,
    plural,
    readable_query,
    safe_url,
    shorten,
    snippet,
    subject_for,
    summary_line,
)

_Key = tuple[str, tuple[str, ...]]  # Match.key: a paper and the reasons that picked it
_readable = functools.lru_cache(maxsize=4096)(readable_query)  # a query, parsed once per run
_label = functools.lru_cache(maxsize=64)(edition_label)
_subject = functools.lru_cache(maxsize=4096)(subject_for)  # many share their interests


def _shown(interests: Sequence[str]) -> list[str]:
    return [shorten(clean(x), MAX_LABEL) for x in interests]


@functools.lru_cache(maxsize=4096)
def _said(interests: tuple[str, ...]) -> str:
    """The footer's list of what a subscriber follows, once for all who follow the same."""
    return and_list(_shown(interests))


class Renderer:
    """Built once per run: templates read, CSS inlined, frames made as emails come.

    A card is assembled once for everyone who gets the same card, from its paper's frame
    and parts shared across papers (see `CardCache`); a digest is its shape's frame filled
    (see `DigestFrames`): build one Renderer per run. `frames=False` renders every card and
    email with jinja (what the frames must equal, byte for byte); `naive=True` renders and
    inlines each whole email: the reference that tests compare against and the bench measures.

    Raises:
        RenderError: (from the constructor) the templates are missing or unusable.
    """

    def __init__(
        self,
        config: Config,
        topics: Mapping[str, Topic] | None = None,
        *,
        thumbnails: bool = False,
        expected_cards: int | None = None,
        frames: bool = True,
    ) -> None:
        self.config = config
        self.topics = dict(topics or {})
        self.thumbnails = thumbnails
        self.brand = clean(parseaddr(config.mail.from_)[0]) or "Paper Digest"
        self.templates = load_templates(config)
        self._postal = clean(config.mail.postal_address)
        loaded = self.templates.loaded
        html, text = loaded["email/digest.html.j2"], loaded["email/digest.txt.j2"]
        self.frames = DigestFrames(html, text, self.templates.fast) if frames else None
        self.cards = CardCache(
            loaded[card_template("email/digest.html.j2")],
            loaded[card_template("email/digest.txt.j2")],
            thumbnails,
            card_capacity(expected_cards),
            frames=frames,
        )

    @property
    def cards_rendered(self) -> int:
        """How many cards were rendered so far: the cache's hit rate, for tests and the bench."""
        return self.cards.rendered

    @property
    def cards_hit_rate(self) -> float:
        """The share of cards taken from the cache rather than rendered, for the run's report
        and the bench (0.0 before any email)."""
        return self.cards.hit_rate

    def expect_cards(self, expected: int) -> None:
        """Size the card cache for an edition expected to show `expected` distinct cards (at
        most the cards its emails show in all), within the cache's cap: an edition whose
        cards all fit renders each once."""
        self.cards.resize(card_capacity(expected))

    def digest(
        self,
        sub: Subscriber,
        matches: Sequence[Match],
        edition_name: str,
        edition_date: date,
        new_papers: int | None,
        links: Mapping[str, str],
        *,
        matched: int | None = None,
        naive: bool = False,
        reading: Reading | None = None,
    ) -> RenderedEmail:
        """One subscriber's digest; `reading` adds "Recommended for you" and More/Less links.
        `matched` counts matches before the cap (default: `matches.total`), `new_papers` the
        edition's; None is unknown and not stated. `naive`: the reference path, card by card.

        Raises:
            RenderError: no matches (send `nothing_new` instead), a manage or unsubscribe
                link that is not http(s), or a template failing on this email.
        """
        if not matches and not (reading and reading.recommended):
            raise RenderError(f"{sub.email}: no matches to render (use nothing_new)")
        shown = len(matches)
        total = matched if matched is not None else getattr(matches, "total", None)
        grouped = _grouped(self.cards, sub, matches)
        html_groups, text_groups = self._sections(sub, grouped, naive)
        names = [
            label if kind == "topic" else _readable(name) for (kind, name), label, _ in grouped
        ]
        ctx = self._context(sub, edition_name, edition_date, links)
        ctx["subject"] = _subject(shown, tuple(names), edition_name, edition_date)
        ctx["summary"] = summary_line(shown, total, new_papers)
        _reading(ctx, [[m.paper.id for m, _ in g[2]] for g in grouped], reading)
        ctx["more"] = (
            f"{plural(total - shown, 'more paper')} matched but did not fit your limit of "
            f"{sub.max_papers}."
            if total is not None and total > shown
            else ""
        )
        return self._render("digest", ctx, html_groups, text_groups, naive)

    def nothing_new(
        self,
        sub: Subscriber,
        edition_name: str,
        edition_date: date,
        new_papers: int | None,
        cause: str | None,
        links: Mapping[str, str],
        *,
        naive: bool = False,
    ) -> RenderedEmail | None:
        """None under the `skip` policy; else a short note saying why when the cause is known:
        `weekend`, `holiday`, or any other text (e.g. which source failed). `new_papers` is
        None when the edition's count is unknown (then it is not stated).

        Raises:
            RenderError: a manage or unsubscribe link that is not http(s), or a template
                failing on this email.
        """
        if self.config.mail.no_matches != "note":
            return None
        ctx = self._context(sub, edition_name, edition_date, links)
        weekly = "-W" in edition_name
        when = "this week" if weekly else "today"
        ctx["subject"] = shorten(
            f"Nothing new for you {when} - {edition_label(edition_name, edition_date, long=False)}",
            MAX_SUBJECT,
        )
        ctx["summary"] = f"Nothing new for you {when}"
        ctx["note"] = nothing_new_note(new_papers, cause, when)
        ctx["more"] = ""
        return self._render("digest", ctx, [], [], naive)

    def confirm(
        self,
        email: str,
        confirm_url: str,
        topics: Sequence[str] = (),
        queries: Sequence[str] = (),
        *,
        naive: bool = False,
    ) -> RenderedEmail:
        """The double opt-in email. `topics` are the names (or titles) asked for.

        Raises:
            RenderError: `confirm_url` is not an absolute http(s) URL, or a template fails.
        """
        url = safe_url(confirm_url)
        if url is None:
            raise RenderError("confirm_url: not an absolute http(s) URL")
        titles = [self.topics[t].title if t in self.topics else t for t in topics]
        ctx = {
            "subject": f"Confirm your subscription to {self.brand}",
            "preheader": f"One click and {self.brand} starts arriving.",
            "brand": self.brand,
            "email": email,
            "interests": [shorten(clean(x), MAX_LABEL) for x in [*titles, *queries]],
            "confirm_url": url,
            "valid_hours": self.config.web.confirm_hours,
            "postal_address": clean(self.config.mail.postal_address),
        }
        return self._render("confirm", ctx, [], [], naive)

    def interests(self, sub: Subscriber) -> list[str]:
        """What the subscriber asked for, as they would read it."""
        return _shown(self._titles(sub.topics) + tuple(sub.queries))

    def _sections(
        self,
        sub: Subscriber,
        grouped: list[tuple[tuple[str, str], str, list[tuple[Match, _Key]]]],
        naive: bool,
    ) -> tuple[list[Group], list[Group]]:
        """The groups of cards as the HTML and text parts print them: the first few cards
        full, the rest compact. Cached cards come rendered; `naive` ones as data."""
        labelled = len(sub.topics) + len(sub.queries) > 1
        shown = sum(len(members) for _, _, members in grouped)
        full = FULL_CARDS if shown <= LONG_EMAIL else FULL_CARDS_LONG
        html_groups, text_groups = [], []
        position = 0
        parts = not naive and self.frames is not None
        for _, label, members in grouped:
            html_cards: list[Any] = []
            text_cards: list[Any] = html_cards if parts else []
            for m, key in members:
                compact = position >= full
                position += 1
                if parts:  # filled by the digest's frame (see DigestFrames)
                    html_cards.append(self.cards.parts(m, compact, key))
                elif naive:
                    card = build_card(m, self.thumbnails, compact=compact)
                    html_cards.append(card)
                    text_cards.append(card)
                else:
                    rendered = self.cards.card(m, compact, key)
                    html_cards.append(rendered.html)
                    text_cards.append(rendered.text)
            name = shorten(clean(label), MAX_LABEL) if labelled else None
            html_groups.append(Group(name, plural(len(members), "paper"), html_cards))
            text_groups.append(Group(name, plural(len(members), "paper"), text_cards))
        return html_groups, text_groups

    def _context(
        self, sub: Subscriber, edition_name: str, edition_date: date, links: Mapping[str, str]
    ) -> dict[str, Any]:
        """What every digest and note shows: brand, headline, footer and checked links."""
        checked = {k: safe_url(links.get(k)) for k in ("manage", "unsubscribe")}
        missing = [k for k, v in checked.items() if v is None]
        if missing:
            raise RenderError(f"links: no valid http(s) URL for {' and '.join(missing)}")
        # "web" is the subscriber's page of emails; this email's own is under its edition
        web = safe_url(links.get("web"))
        checked["web"] = f"{web.rstrip('/')}/{edition_name}" if web else None
        return {
            "brand": self.brand,
            "headline": _label(edition_name, edition_date, long=True),
            "email": sub.email,
            "interests": _said(self._titles(sub.topics) + tuple(sub.queries)),
            "links": checked,
            "postal_address": self._postal,
            "note": [],
        }

    def _titles(self, topics: Sequence[str]) -> tuple[str, ...]:
        return tuple(self.topics[t].title if t in self.topics else t for t in topics)

    def _render(
        self,
        kind: str,
        ctx: dict[str, Any],
        html_groups: list[Group],
        text_groups: list[Group],
        naive: bool,
    ) -> RenderedEmail:
        env = self.templates.environment(naive)
        try:
            if kind == "digest" and not naive and self.frames:  # see DigestFrames
                found = self.frames.render(ctx, html_groups, text_groups)
                if found is not None:
                    return RenderedEmail(ctx["subject"], *found)
                html_groups, text_groups = filled(html_groups, 0), filled(text_groups, 1)
            html = env.get_template(f"email/{kind}.html.j2").render(ctx, groups=html_groups)
            text = env.get_template(f"email/{kind}.txt.j2").render(ctx, groups=text_groups)
        except TemplateError as ex:
            raise RenderError(f"email/{kind}: {ex}") from ex
        if naive:
            html = inline_css(html)
        return RenderedEmail(ctx["subject"], html, text)


def _grouped(
    cards: CardCache, sub: Subscriber, matches: Sequence[Match]
) -> list[tuple[tuple[str, str], str, list[tuple[Match, _Key]]]]:
    """Each paper under its first reason, groups in the subscriber's order: topics, then
    queries; as ((kind, name), label, [(match, match.key)])."""
    groups: dict[tuple[str, str], tuple[str, list[tuple[Match, _Key]]]] = {}
    for m in matches:
        key = m.key
        group, label = cards.group_of(m, key)
        groups.setdefault(group, (label, []))[1].append((m, key))
    order = {("topic", t): i for i, t in enumerate(sub.topics)}
    order.update({("query", q): len(order) + i for i, q in enumerate(sub.queries)})
    ranked = sorted(groups.items(), key=lambda kv: order.get(kv[0], len(order)))
    return [(group, label, members) for group, (label, members) in ranked]


@dataclass(frozen=True, slots=True)
class Reading:
    """What a digest shows beyond its matches: papers recommended from what the reader liked
    and `feedback`, a paper id's "More like this" and "Less like this" URLs."""

    recommended: Sequence[Recommended] = ()
    feedback: Callable[[str], tuple[str, str]] | None = None


def _reading(ctx: dict[str, Any], grouped_ids: list[list[str]], reading: Reading | None) -> None:
    """Add the "Recommended for you" papers (after the matches) and each paper's "More/Less
    like this" URLs (`feedback`) to a digest's context; a digest of recommendations alone
    gets its own subject and summary."""
    recommended = reading.recommended if reading else ()
    feedback = reading.feedback if reading else None
    if feedback is not None:
        ctx["feedback"] = [[feedback(pid) for pid in ids] for ids in grouped_ids]
    if recommended:
        ctx["recommended"] = [_recommended_view(r, feedback) for r in recommended]
    if recommended and not grouped_ids:
        count = plural(len(recommended), "paper")
        ctx["subject"] = shorten(f"{count} recommended for you - {ctx['headline']}", MAX_SUBJECT)
        ctx["summary"] = f"{count} recommended for you from what you liked"
    ctx.setdefault("feedback", [])
    ctx.setdefault("recommended", [])


def _recommended_view(
    rec: Recommended, feedback: Callable[[str], tuple[str, str]] | None
) -> dict[str, Any]:
    """What the "Recommended for you" section shows of one paper (escaped by the template)."""
    more, less = feedback(rec.paper.id) if feedback is not None else (None, None)
    url, _ = paper_links(rec.paper)
    return {
        "title": shorten(clean(rec.paper.title), 200),
        "url": url,
        "authors": authors_line(rec.paper.authors),
        "why": shorten(clean(rec.why), 240),
        "more": more,
        "less": less,
    }


__all__ = [
    "Card",
    "Reading",
    "RenderedEmail",
    "Renderer",
    "authors_line",
    "build_card",
    "edition_label",
    "inline_css",
    "paper_card",
    "paper_links",
    "plural",
    "readable_query",
    "safe_url",
    "snippet",
    "subject_for",
    "summary_line",
    "templates_dir",
    "why_lines",
]
