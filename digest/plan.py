"""Planning, the first part of the daily job: who is due for which edition, and which papers
each of them gets, written as one delivery row per (subscriber, edition) before anything is
sent. Builds and sends nothing; sending works only from the rows written here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from digest.config import Config
from digest.edition import Edition, daily_window, due_edition, weekly_window
from digest.errors import SubscriberError
from digest.match import MATCH_FIELDS, EditionMatchers, Matches
from digest.message import message_id_for
from digest.models import Cadence, Paper, Subscriber, SubscriberStatus, Topic
from digest.recommend.errors import RecommendError
from digest.recommend.seeds import MAX_SEED_BYTES, parse_seeds, resolve_seeds
from digest.store import (
    DeliveryStatus,
    PlannedDelivery,
    PlannedRecommendation,
    SignalKind,
    Store,
    StoredProfile,
)

if TYPE_CHECKING:  # scikit-learn costs ~0.8 s to import: only runs that recommend pay it
    from digest.recommend.profile import ProfileInputs
    from digest.recommend.score import Ranking
    from digest.recommend.vectorize import Matrix, Vectorizer

BATCH = 250  # small pages keep the garbage collector's passes short
# What planning reads of a subscriber: matching's fields and the clock that makes them due.
PLAN_FIELDS = (*MATCH_FIELDS, "cadence", "weekday", "hour", "tz", "recommend")


@dataclass
class PlanReport:
    """What planning decided, in numbers (and, for a dry run, who would get what)."""

    planned: int = 0
    no_matches: int = 0
    not_due: int = 0
    already: int = 0
    recommended: int = 0  # readers given at least one "Recommended for you" paper
    recommend_errors: list[str] = field(default_factory=list)  # one line per failed batch
    errors: list[str] = field(default_factory=list)  # subscribers who could not be planned
    preview: list[tuple[str, str, list[str]]] = field(default_factory=list)


def run_matchers(
    store: Store,
    topics: Mapping[str, Topic],
    now: datetime,
    end: datetime,
    *,
    open_it: bool,
) -> EditionMatchers:
    """The run's editions, named by its date, with their windows fixed here, once: the daily
    edition's (opened and stored unless `open_it` is False, as in a dry run) ending at `end`,
    after this run collected, and the weekly edition's seven days up to it."""
    daily = daily_window(store, now.date(), end, open_it=open_it)
    windows = {Edition.daily(now.date()): daily, Edition.weekly(now.date()): weekly_window(daily)}
    return EditionMatchers(store, topics, now, windows)


def plan(
    config: Config,
    store: Store,
    matchers: EditionMatchers,
    now: datetime,
    written_at: datetime,
    *,
    dry_run: bool = False,
) -> PlanReport:
    """Decide, a batch of subscribers at a time, who is due now and which papers each gets;
    record it (unless dry). Already planned (subscriber, edition) pairs are left alone, so
    running twice plans nothing twice."""
    planner = _Planner(config, store, matchers, now, written_at, dry_run)
    batch: list[Subscriber] = []
    for sub in store.iter_subscribers([SubscriberStatus.ACTIVE], fields=PLAN_FIELDS):
        batch.append(sub)
        if len(batch) >= BATCH:
            planner.batch(batch)
            batch = []
    if batch:
        planner.batch(batch)
    return planner.report


@dataclass
class _Planner:
    config: Config
    store: Store
    matchers: EditionMatchers
    now: datetime
    written_at: datetime
    dry_run: bool
    report: PlanReport = field(default_factory=PlanReport)
    sent: dict[str, dict[int, set[str]]] = field(default_factory=dict)
    recommender: Recommender | None = None

    def batch(self, batch: Sequence[Subscriber]) -> None:
        todo = self._due(batch)
        found: list[tuple[PlannedDelivery, list[PlannedRecommendation]]] = []
        for cadence in Cadence:
            group = [(s, e) for s, e in todo if e.cadence is cadence]
            if group:
                found += self._match(Edition.of(cadence, self.now.date()), group)
        if found:
            rows = [row for row, _ in found]
            planned = {(r.subscriber_id, r.edition): recs for r, recs in found if recs}
            with self.store.write():  # the papers and their reasons land together
                self.store.plan_deliveries(rows, self.written_at)
                self.store.record_recommended(planned)

    def _due(self, batch: Sequence[Subscriber]) -> list[tuple[Subscriber, Edition]]:
        """The batch's subscribers due now and not yet planned for their edition."""
        report = self.report
        due: list[tuple[Subscriber, Edition]] = []
        for sub in batch:
            try:
                edition = due_edition(sub, self.now)
            except SubscriberError as ex:  # e.g. a stored time zone this machine lacks
                report.errors.append(str(ex))
                continue
            if edition is None:
                report.not_due += 1
            else:
                due.append((sub, edition))
        if not due:
            return []
        done = self.store.delivered_editions(
            [s.id or 0 for s, _ in due], sorted({e.name for _, e in due})
        )
        todo = [(s, e) for s, e in due if (s.id, e.name) not in done]
        report.already += len(due) - len(todo)
        return todo

    def _match(
        self, current: Edition, group: Sequence[tuple[Subscriber, Edition]]
    ) -> list[tuple[PlannedDelivery, list[PlannedRecommendation]]]:
        """One cadence's due subscribers against the run's edition of that cadence: the rows
        to write, each with the counts its email states (new papers, matches before the cap),
        and the recommendations among its papers."""
        matcher = self.matchers.of(current)
        ids = [p.id for p in matcher.papers]
        if current.name not in self.sent:  # one join for the edition, not one per batch
            self.sent[current.name] = self.store.sent_by_subscriber(ids)
        note = self.config.mail.no_matches == "note"
        rows = []
        found = list(matcher.for_subscribers([s for s, _ in group], self.sent[current.name]))
        recs = self._recommend(group, matcher.papers, found, self.sent[current.name])
        for (sub, edition), matches in zip(group, found, strict=True):
            mine = recs.get(sub.id or 0, [])
            papers = [*matches.paper_ids, *(r.paper_id for r in mine)]
            self.report.no_matches += not papers
            self.report.recommended += bool(mine)
            if self.dry_run:
                titles = [m.paper.title for m in matches]
                self.report.preview.append((sub.email, edition.name, titles))
                continue
            status = DeliveryStatus.PENDING if papers or note else DeliveryStatus.SKIPPED
            self.report.planned += status is DeliveryStatus.PENDING
            row = PlannedDelivery(
                subscriber_id=sub.id or 0,
                email=sub.email,
                edition=edition.name,
                status=status,
                papers=tuple(papers),
                message_id=message_id_for(
                    sub.id or 0, edition.name, self.config.mail.from_, self.config.secret
                ),
                matched=matches.total,
                new_papers=len(ids),
                reply=None if papers else "no matching papers",
            )
            rows.append((row, mine))
        return rows

    def _recommend(
        self,
        group: Sequence[tuple[Subscriber, Edition]],
        papers: Sequence[Paper],
        found: Sequence[Matches],
        sent: Mapping[int, Collection[str]],
    ) -> dict[int, list[PlannedRecommendation]]:
        """The batch's recommendations; a failure costs only them (matches still go out),
        as one line in the report. A dry run recommends nothing: it would write vectors and
        profiles, and a dry run changes nothing."""
        if self.dry_run:
            return {}
        if self.recommender is None:
            self.recommender = Recommender(self.config, self.store, self.now)
        exclude = {
            sub.id or 0: set(matches.paper_ids) | set(sent.get(sub.id or 0, ()))
            for (sub, _), matches in zip(group, found, strict=True)
        }
        try:
            return self.recommender.recommend([s for s, _ in group], papers, exclude)
        except RecommendError as ex:
            self.report.recommend_errors.append(str(ex))
            return {}
        finally:
            self.report.recommend_errors += self.recommender.notes
            self.recommender.notes.clear()


# ---------------------------------------------------------------- recommendations

VOCABULARY_DAYS = 180  # the vocabulary is fitted on this many days of stored papers
VOCABULARY_PAPERS = 20_000


def recommend_count(config: Config, sub: Subscriber) -> int:
    """How many "Recommended for you" papers this reader gets (their own count, else the
    config's; 0 is off)."""
    return config.recommend.count if sub.recommend is None else max(0, sub.recommend)


class Recommender:
    """One run's recommendations: the vocabulary (fitted once, when none is stored), paper
    vectors (computed lazily, the first time a paper is scored or liked, and stored: a paper
    is vectorised once per vocabulary), profiles (re-fitted only when a reader's signals
    changed) and, per batch of readers, one `score_all` over the edition.

    Why lazily at plan time rather than when collected: the first collection has no
    vocabulary to vectorise with, `collect` stays free of scikit-learn (~0.8 s to import),
    and only papers someone is scored against or liked are ever vectorised. Measured on the
    real corpus (2 cores): the vocabulary fit on 20,000 papers takes ~21 s, once; then a
    1,000-paper edition is vectorised in ~0.2 s, once. `fit=False` (the web) never fits.
    """

    def __init__(self, config: Config, store: Store, now: datetime, *, fit: bool = True) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.fit = fit
        self.notes: list[str] = []  # what went wrong and was repaired, for the run's report
        self._vectorizer: Vectorizer | None = None
        self._editions: dict[int, tuple[dict[str, int], Matrix]] = {}

    def vectorizer(self) -> Vectorizer:
        """The stored vocabulary, or one fitted now on recent stored papers and stored (also
        in place of a damaged one, with a line in `notes`: the run still recommends).

        Raises:
            RecommendError: too few papers to fit one; without `fit`, none usable stored."""
        from digest.recommend.vectorize import Vectorizer, fit_vectorizer

        if self._vectorizer is None:
            stored = self.store.latest_vectorizer()
            if stored is not None:
                try:
                    self._vectorizer = Vectorizer.from_bytes(stored.data)
                except RecommendError as ex:
                    if not self.fit:
                        raise
                    self.notes.append(f"{ex}; fitted a new one")
            if self._vectorizer is None and not self.fit:
                raise RecommendError("recommend: no vocabulary fitted yet (the daily job fits it)")
            if self._vectorizer is None:
                start = self.now - timedelta(days=VOCABULARY_DAYS)
                papers = self.store.papers_between(start)[-VOCABULARY_PAPERS:]
                fitted = fit_vectorizer(papers)
                self.store.save_vectorizer(fitted.version, fitted.to_bytes(), len(papers), self.now)
                self._vectorizer = fitted
        return self._vectorizer

    def vectors(self, papers: Sequence[Paper]) -> dict[str, Matrix]:
        """The papers' vectors: stored ones read, missing ones computed and stored."""
        from digest.recommend.vectorize import vector_from_bytes, vector_to_bytes

        vec = self.vectorizer()
        blobs = self.store.paper_vectors([p.id for p in papers], vec.version)
        out = {pid: vector_from_bytes(b, vec.version) for pid, b in blobs.items()}
        missing = [p for p in {p.id: p for p in papers}.values() if p.id not in out]
        if missing:
            rows = vec.transform(missing)
            fresh = {p.id: rows[i] for i, p in enumerate(missing)}
            self.store.save_paper_vectors(
                {pid: vector_to_bytes(v, vec.version) for pid, v in fresh.items()}, vec.version
            )
            out.update(fresh)
        return out

    def inputs(self, subs: Sequence[Subscriber]) -> dict[int, ProfileInputs]:
        """Each reader's seeds and feedback; readers who said nothing are left out (when no
        one said anything, scikit-learn is never imported: ~40 MB and ~0.8 s CPU saved)."""
        signals = self.store.signals_of([s.id or 0 for s in subs])
        if not signals:
            return {}
        from digest.recommend.profile import Feedback, ProfileInputs

        out: dict[int, ProfileInputs] = {}
        for sid, said in signals.items():
            seeds = [p for p, k in said.items() if k is SignalKind.SEED]
            feedback = {
                p: Feedback.MORE if k is SignalKind.MORE else Feedback.LESS
                for p, k in said.items()
                if k is not SignalKind.SEED
            }
            inputs = ProfileInputs.of(seeds, feedback)
            if inputs.liked:
                out[sid] = inputs
        return out

    def profiles(self, inputs: Mapping[int, ProfileInputs]) -> dict[int, bytes]:
        """Stored profiles, re-fitted (and stored) where their inputs changed."""
        from digest.recommend.profile import fit_profile

        vec = self.vectorizer()
        stored = self.store.reader_profiles(list(inputs))
        stale = [
            sid
            for sid, i in inputs.items()
            if sid not in stored or stored[sid].fingerprint != i.fingerprint(vec.version)
        ]
        out = {sid: stored[sid].profile for sid in inputs if sid not in stale}
        if stale:
            ids = sorted({p for sid in stale for p in (inputs[sid].liked | inputs[sid].less)})
            vectors = self.vectors(self.store.papers_by_id(ids))
            empty = np.zeros((0, vec.dimensions), np.float32)
            fresh: dict[int, StoredProfile] = {}
            for sid in stale:
                profile = fit_profile(inputs[sid], vectors, empty, vec.version)
                if profile is not None:
                    fresh[sid] = StoredProfile(profile.to_bytes(), profile.fingerprint)
            self.store.save_profiles(fresh, self.now)
            out.update({sid: p.profile for sid, p in fresh.items()})
        return out

    def edition(self, papers: Sequence[Paper]) -> tuple[dict[str, int], Matrix]:
        """The edition's papers as positions and one matrix of vectors, made once per run."""
        key = id(papers)
        if key not in self._editions:
            vectors = self.vectors(papers)
            dims = self.vectorizer().dimensions
            matrix = (
                np.vstack([vectors[p.id] for p in papers])
                if papers
                else np.zeros((0, dims), np.float32)
            )
            self._editions[key] = ({p.id: i for i, p in enumerate(papers)}, matrix)
        return self._editions[key]

    def recommend(
        self,
        subs: Sequence[Subscriber],
        papers: Sequence[Paper],
        exclude: Mapping[int, Collection[str]],
    ) -> dict[int, list[PlannedRecommendation]]:
        """For a batch of readers: each one's best papers of the edition (none of `exclude`,
        which holds what is already in their email or was sent before), with a reason.

        Raises:
            RecommendError: the vocabulary cannot be fitted or loaded (no one gets any)."""
        counts = {s.id or 0: recommend_count(self.config, s) for s in subs}
        wanted = [s for s in subs if counts[s.id or 0] > 0]
        followed = self.by_followed_authors(wanted, papers, exclude) if wanted and papers else {}
        inputs = self.inputs(wanted) if wanted and papers else {}
        blobs = self.profiles(inputs) if inputs else {}
        scored = self._scored(blobs, counts, inputs, papers, exclude) if blobs else {}
        out: dict[int, list[PlannedRecommendation]] = {}
        for sid in {*followed, *scored}:
            first = followed.get(sid, [])
            taken = {r.paper_id for r in first}
            rest = [r for r in scored.get(sid, []) if r.paper_id not in taken]
            out[sid] = (first + rest)[: counts[sid]]
        return out

    def by_followed_authors(
        self,
        subs: Sequence[Subscriber],
        papers: Sequence[Paper],
        exclude: Mapping[int, Collection[str]],
    ) -> dict[int, list[PlannedRecommendation]]:
        """The edition's papers by authors each reader follows (first in their section)."""
        follows = self.store.followed_of([s.id or 0 for s in subs])
        if not follows:
            return {}
        by_author: dict[str, list[Paper]] = {}
        for paper in papers:
            for name in paper.authors:
                by_author.setdefault(" ".join(name.split()).casefold(), []).append(paper)
        out: dict[int, list[PlannedRecommendation]] = {}
        for sid, authors in follows.items():
            seen = set(exclude.get(sid, ()))
            for author in authors:
                for paper in by_author.get(author.casefold(), []):
                    if paper.id not in seen:
                        seen.add(paper.id)
                        why = f"By {author}, whom you follow"
                        out.setdefault(sid, []).append(PlannedRecommendation(paper.id, 1.0, why))
        return out

    def _scored(
        self,
        blobs: Mapping[int, bytes],
        counts: Mapping[int, int],
        inputs: Mapping[int, ProfileInputs],
        papers: Sequence[Paper],
        exclude: Mapping[int, Collection[str]],
    ) -> dict[int, list[PlannedRecommendation]]:
        """Every profiled reader of the batch scored at once (`score_all`), then explained."""
        from digest.recommend.score import score_all, stack_profile_bytes

        positions, matrix = self.edition(papers)
        stacked = stack_profile_bytes(
            {str(sid): b for sid, b in blobs.items()}, self.vectorizer().dimensions
        )
        skip = {  # never what is in the email, was sent, or the reader already judged
            str(sid): [
                positions[p]
                for p in {*exclude.get(sid, ()), *inputs[sid].liked, *inputs[sid].less}
                if p in positions
            ]
            for sid in blobs
        }
        k = max(counts[sid] for sid in blobs)
        ranking = score_all(stacked, matrix, k, skip)
        return self._explained(ranking, counts, inputs, papers, matrix)

    def _explained(
        self,
        ranking: Ranking,
        counts: Mapping[int, int],
        inputs: Mapping[int, ProfileInputs],
        papers: Sequence[Paper],
        matrix: Matrix,
    ) -> dict[int, list[PlannedRecommendation]]:
        from digest.recommend.explain import Explainer

        floor = self.config.recommend.min_score
        picked: dict[int, list[tuple[int, float]]] = {}
        for r, reader in enumerate(ranking.readers):
            sid = int(reader)
            best = [(i, s) for i, s in ranking.for_reader(r) if s >= floor][: counts[sid]]
            if best:
                picked[sid] = best
        if not picked:
            return {}
        liked_ids = sorted({p for sid in picked for p in inputs[sid].liked})
        liked_papers = self.store.papers_by_id(liked_ids)
        liked_vectors = self.vectors(liked_papers)
        explainer = Explainer(
            self.vectorizer(), [*(papers[i] for b in picked.values() for i, _ in b), *liked_papers]
        )
        out: dict[int, list[PlannedRecommendation]] = {}
        for sid, best in picked.items():
            liked = [p for p in sorted(inputs[sid].liked) if p in liked_vectors]
            rows = np.vstack([liked_vectors[p] for p in liked]) if liked else matrix[:0]
            out[sid] = []
            for i, score in best:
                reason = explainer.reason(papers[i].id, matrix[i], liked, rows)
                why = reason.text() if reason else "Like the papers you liked"
                out[sid].append(PlannedRecommendation(papers[i].id, score, why))
        return out


def add_seeds(
    store: Store, sub: Subscriber, data: bytes, name: str, now: datetime, source: str
) -> str:
    """Seed papers a reader likes from arXiv ids or URLs, DOIs, BibTeX or a Zotero/Mendeley
    CSV (resolved against stored papers; titles matched when there is no id). Returns one
    line: what the file named, what was skipped, added, and not found.

    Raises:
        RecommendError: the input is over MAX_SEED_BYTES or names too many papers."""
    seeds = parse_seeds(data, name)
    ids = [r.value for r in seeds.refs if r.kind.value == "arxiv"]
    dois = [r.value for r in seeds.refs if r.kind.value == "doi"]
    candidates = store.papers_by_id(store.arxiv_and_doi_matches(ids, dois))
    if any(r.kind.value == "title" for r in seeds.refs):
        candidates += [Paper(pid, title) for pid, title in store.all_titles()]
    resolved = resolve_seeds(seeds.refs, candidates)
    store.record_signals(sub.id or 0, resolved.found, SignalKind.SEED, now, source)
    return f"{sub.email}: {seeds.summary()}; {resolved.summary()}"


def read_seed_file(path: str) -> bytes:
    """A seeds file, read only up to one byte past the limit (a 50 MB file is refused by
    `parse_seeds` without being held in memory whole)."""
    with open(path, "rb") as f:
        return f.read(MAX_SEED_BYTES + 1)


def similar_papers(
    config: Config, store: Store, now: datetime, paper_id: str, days: int = 7, limit: int = 5
) -> list[Paper]:
    """The stored papers of the last `days` most like one paper (cosine of their vectors),
    best first: what the feedback page shows after a click. None when there is no vocabulary
    yet (too few papers) or the paper is unknown."""
    paper = store.get_paper(paper_id)
    recent = [p for p in store.papers_between(now - timedelta(days=days)) if p.id != paper_id]
    if paper is None or not recent:
        return []
    recommender = Recommender(config, store, now, fit=False)
    try:
        vectors = recommender.vectors([paper, *recent])
    except RecommendError:
        return []
    scores = np.vstack([vectors[p.id] for p in recent]) @ vectors[paper.id]
    order = np.argsort(-scores, kind="stable")[:limit]
    return [recent[int(i)] for i in order if scores[int(i)] > 0]
