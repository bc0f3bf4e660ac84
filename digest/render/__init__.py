"""Emails as (subject, html, text): jinja2 templates, CSS inlined once per template at load,
cards cached across subscribers, subject lines. Knows nothing of SMTP or message headers.

Feed text is only ever escaped by the templates (autoescape); links that are not http(s) are
dropped; nothing here builds HTML out of feed text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from email.utils import parseaddr
from typing import Any

from jinja2 import ChoiceLoader, DictLoader, FileSystemLoader, TemplateError
from markupsafe import Markup

from digest.config import Config
from digest.errors import RenderError
from digest.match import Match, Reason
from digest.models import Subscriber, Topic
from digest.render.cards import (
    Group,
    PaperView,
    _Rendered,
    build_card,
    paper_links,
    view_paper,
    why_lines,
)
from digest.render.inline import (
    _environment,
    _protect,
    _restore,
    _split_card,
    inline_css,
    templates_dir,
)
from digest.render.text import (
    _CSS_INCLUDE,
    _OTHER_TEMPLATES,
    CARD_CACHE,
    CAUSES,
    FULL_CARDS,
    FULL_CARDS_LONG,
    LONG_EMAIL,
    MAX_LABEL,
    MAX_SUBJECT,
    RenderedEmail,
    _count,
    _when,
    and_list,
    authors_line,
    clean,
    readable_query,
    safe_url,
    shorten,
    snippet,
    subject_for,
    summary_line,
)


class Renderer:
    """Built once per run: templates read, CSS inlined, then only jinja per email.

    Cards are cached by (Match.key, Match.terms, paper.updated_at): everyone whose queries
    picked a paper for the same reasons gets the same card, rendered once. A paper id (and
    its updated_at) must stand for one paper's content while a Renderer lives: build one per
    run. `naive=True` renders and inlines each whole email: the reference that tests compare
    against and the bench measures.
    """

    def __init__(
        self,
        config: Config,
        topics: Mapping[str, Topic] | None = None,
        *,
        thumbnails: bool = False,
    ) -> None:
        self.config = config
        self.topics = dict(topics or {})
        self.thumbnails = thumbnails
        self.brand = clean(parseaddr(config.mail.from_)[0]) or "Paper Digest"
        self.cards_rendered = 0
        self._cards: dict[tuple[object, ...], _Rendered] = {}
        self._papers: dict[tuple[str, str | None], PaperView] = {}
        self._groups: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, str], str]] = {}
        folder = templates_dir(config)
        self.raw = _environment(FileSystemLoader(folder))
        processed: dict[str, str] = {}
        for name in ("email/digest.html.j2", "email/digest.txt.j2"):
            main, card = _split_card(self._prepared(name), name)
            processed[name] = main
            processed[name.replace("digest.", "digest.card.")] = card
        for name in ("email/confirm.html.j2", "email/confirm.txt.j2"):
            processed[name] = self._prepared(name)
        self.env = _environment(ChoiceLoader([DictLoader(processed), FileSystemLoader(folder)]))
        try:
            self._t = {n: self.env.get_template(n) for n in processed}
        except TemplateError as ex:
            raise RenderError(f"email templates in {folder}: {ex}") from ex

    def _prepared(self, name: str) -> str:
        """A template's source, its CSS inlined when it is HTML (once, here)."""
        try:
            source = self.raw.loader.get_source(self.raw, name)[0]  # type: ignore[union-attr]
            if not name.endswith(".html.j2"):
                return source
            source = _CSS_INCLUDE.sub(
                lambda m: self.raw.loader.get_source(self.raw, m[1])[0],  # type: ignore[union-attr]
                source,
            )
        except TemplateError as ex:
            raise RenderError(f"{name}: {ex}") from ex
        if _OTHER_TEMPLATES.search(source):
            raise RenderError(f"{name}: HTML email templates must be self-contained")
        protected, swaps = _protect(source, name)
        return _restore(inline_css(protected), swaps, name)

    def _card(self, match: Match, compact: bool) -> _Rendered:
        paper = match.paper
        key = (match.key, match.terms, paper.updated_at, compact)
        found = self._cards.get(key)
        if found is None:
            view = self._papers.get((paper.id, paper.updated_at))
            if view is None:
                if len(self._papers) >= CARD_CACHE:
                    del self._papers[next(iter(self._papers))]
                view = view_paper(paper, self.thumbnails)
                self._papers[(paper.id, paper.updated_at)] = view
            card = build_card(match, self.thumbnails, view, compact=compact)
            try:
                html = Markup(self._t["email/digest.card.html.j2"].render(card=card))
                text = self._t["email/digest.card.txt.j2"].render(card=card)
            except TemplateError as ex:
                raise RenderError(f"email/digest card: {ex}") from ex
            group, label = self._group_of(match)
            found = _Rendered(html, text, card.paper.title, group, label)
            if len(self._cards) >= CARD_CACHE:
                del self._cards[next(iter(self._cards))]
            self._cards[key] = found
            self.cards_rendered += 1
        return found

    def _group_of(self, match: Match) -> tuple[tuple[str, str], str]:
        """The paper's first reason ((kind, name), label): its card goes under it."""
        found = self._groups.get(match.key)
        if found is None:
            first = match.reasons[0] if match.reasons else Reason("query", "", "", ())
            found = ((first.kind, first.name), first.label)
            if len(self._groups) >= CARD_CACHE:
                del self._groups[next(iter(self._groups))]
            self._groups[match.key] = found
        return found

    def interests(self, sub: Subscriber) -> list[str]:
        """What the subscriber asked for, as they would read it."""
        topics = [self.topics[t].title if t in self.topics else t for t in sub.topics]
        return [shorten(clean(x), MAX_LABEL) for x in [*topics, *sub.queries]]

    def _grouped(
        self, sub: Subscriber, matches: Sequence[Match]
    ) -> list[tuple[tuple[str, str], str, list[Match]]]:
        """Each paper under its first reason, groups in the subscriber's order: topics, then
        queries; as ((kind, name), label, matches)."""
        groups: dict[tuple[str, str], tuple[str, list[Match]]] = {}
        for m in matches:
            group, label = self._group_of(m)
            groups.setdefault(group, (label, []))[1].append(m)
        order = {("topic", t): i for i, t in enumerate(sub.topics)}
        order.update({("query", q): len(order) + i for i, q in enumerate(sub.queries)})
        ranked = sorted(groups.items(), key=lambda kv: order.get(kv[0], len(order)))
        return [(group, label, members) for group, (label, members) in ranked]

    def _context(
        self, sub: Subscriber, edition_name: str, edition_date: date, links: Mapping[str, str]
    ) -> dict[str, Any]:
        checked = {k: safe_url(links.get(k)) for k in ("manage", "unsubscribe")}
        missing = [k for k, v in checked.items() if v is None]
        if missing:
            raise RenderError(f"links: no valid http(s) URL for {' and '.join(missing)}")
        return {
            "brand": self.brand,
            "headline": _when(edition_name, edition_date, long=True),
            "email": sub.email,
            "interests": and_list(self.interests(sub)),
            "links": checked,
            "postal_address": clean(self.config.mail.postal_address),
            "note": [],
        }

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
    ) -> RenderedEmail:
        """One subscriber's digest. `matched` counts the matches before the subscriber's cap
        (default: the matches' own `total`); `new_papers` is the edition's count. A count
        that is None is unknown, and the email does not state it. `naive` renders card by
        card and inlines the whole email (the reference the fast path must equal)."""
        if not matches:
            raise RenderError(f"{sub.email}: no matches to render (use nothing_new)")
        shown = len(matches)
        total = matched if matched is not None else getattr(matches, "total", None)
        grouped = self._grouped(sub, matches)
        labelled = len(sub.topics) + len(sub.queries) > 1
        html_groups, text_groups = [], []
        full = FULL_CARDS if shown <= LONG_EMAIL else FULL_CARDS_LONG
        position = 0
        for _, label, members in grouped:
            html_cards: list[Any] = []
            text_cards: list[Any] = []
            for m in members:
                compact = position >= full
                position += 1
                if naive:
                    card = build_card(m, self.thumbnails, compact=compact)
                    html_cards.append(card)
                    text_cards.append(card)
                else:
                    rendered = self._card(m, compact)
                    html_cards.append(rendered.html)
                    text_cards.append(rendered.text)
            name = shorten(clean(label), MAX_LABEL) if labelled else None
            html_groups.append(Group(name, _count(len(members), "paper"), html_cards))
            text_groups.append(Group(name, _count(len(members), "paper"), text_cards))
        names = [
            label if kind == "topic" else readable_query(name) for (kind, name), label, _ in grouped
        ]
        subject = subject_for(shown, names, edition_name, edition_date)
        ctx = self._context(sub, edition_name, edition_date, links)
        ctx["subject"] = subject
        ctx["summary"] = summary_line(shown, total, new_papers)
        ctx["more"] = (
            f"{_count(total - shown, 'more paper')} matched but did not fit your limit of "
            f"{sub.max_papers}."
            if total is not None and total > shown
            else ""
        )
        return self._render("digest", ctx, html_groups, text_groups, naive)

    def _render(
        self,
        kind: str,
        ctx: dict[str, Any],
        html_groups: list[Group],
        text_groups: list[Group],
        naive: bool,
    ) -> RenderedEmail:
        env = self.raw if naive else self.env
        try:
            html = env.get_template(f"email/{kind}.html.j2").render(ctx, groups=html_groups)
            text = env.get_template(f"email/{kind}.txt.j2").render(ctx, groups=text_groups)
        except TemplateError as ex:
            raise RenderError(f"email/{kind}: {ex}") from ex
        if naive:
            html = inline_css(html)
        return RenderedEmail(ctx["subject"], html, text)

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
        None when the edition's count is unknown (then it is not stated)."""
        if self.config.mail.no_matches != "note":
            return None
        ctx = self._context(sub, edition_name, edition_date, links)
        weekly = "-W" in edition_name
        when = "this week" if weekly else "today"
        ctx["subject"] = shorten(
            f"Nothing new for you {when} - {_when(edition_name, edition_date, long=False)}",
            MAX_SUBJECT,
        )
        ctx["summary"] = f"Nothing new for you {when}"
        if new_papers is None:
            first = f"None of the new papers matched what you follow {when}."
        elif new_papers:
            first = f"None of the {new_papers:,} new papers matched what you follow {when}."
        else:
            first = f"No new papers arrived {when}."
        why = CAUSES.get(cause or "") or (
            f"Why: {shorten(clean(cause), 300).rstrip('.')}." if cause else ""
        )
        ctx["note"] = [first, why] if why else [first]
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
        """The double opt-in email. `topics` are the names (or titles) asked for."""
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


__all__ = [
    "RenderedEmail",
    "Renderer",
    "authors_line",
    "inline_css",
    "paper_links",
    "readable_query",
    "safe_url",
    "snippet",
    "subject_for",
    "summary_line",
    "templates_dir",
    "why_lines",
]
