"""What the store keeps for learning each reader's taste: the fitted vocabulary, paper vectors,
reader signals (seeds, More/Less), followed authors, fitted profiles and the recommendations a
delivery was planned with. Bytes in, bytes out: nothing here imports numpy or scikit-learn.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.store.base import StoreBase, text_time, time_text


class SignalKind(enum.Enum):
    """What a reader said about a paper: one opinion per paper, the latest wins."""

    MORE = "more"
    LESS = "less"
    SEED = "seed"


@dataclass(frozen=True, slots=True)
class Signal:
    """One paper a reader liked, disliked or seeded; `title` for the preferences page."""

    paper_id: str
    kind: SignalKind
    at: datetime
    source: str
    title: str


@dataclass(frozen=True, slots=True)
class StoredVectorizer:
    """The latest vocabulary fit: its `Vectorizer.to_bytes()` and version (8 bytes)."""

    version: bytes
    data: bytes
    papers: int
    fitted_at: datetime


@dataclass(frozen=True, slots=True)
class StoredProfile:
    """A reader's fitted profile bytes and the fingerprint of the inputs it was fitted on."""

    profile: bytes
    fingerprint: str


@dataclass(frozen=True, slots=True)
class PlannedRecommendation:
    """A recommendation as a delivery remembers it, so a rebuild renders the same email."""

    paper_id: str
    score: float
    why: str


class ReadingMixin(StoreBase):
    """Vectors, signals, profiles and planned recommendations."""

    def latest_vectorizer(self) -> StoredVectorizer | None:
        """The most recent vocabulary fit, or None before the first."""
        row = self.db.execute(
            "select version, data, papers, fitted_at from vectorizers"
            " order by fitted_at desc, rowid desc limit 1"
        ).fetchone()
        if row is None:
            return None
        return StoredVectorizer(
            bytes.fromhex(row[0]), bytes(row[1]), int(row[2]), text_time(str(row[3]))
        )

    def save_vectorizer(self, version: bytes, data: bytes, papers: int, now: datetime) -> None:
        """Keep a new fit; vectors of older fits stay until `drop_old_vectors`."""
        with self.write():
            self.db.execute(
                "insert or replace into vectorizers (version, data, papers, fitted_at)"
                " values (?, ?, ?, ?)",
                [version.hex(), data, papers, time_text(now, "now")],
            )

    def paper_vectors(self, paper_ids: Sequence[str], version: bytes) -> dict[str, bytes]:
        """Stored vectors of these papers under one fit (papers without one are absent)."""
        found: dict[str, bytes] = {}
        sql = (
            "select paper_id, vector from paper_vectors where version = ? and paper_id in ({marks})"
        )
        for pid, blob in self._rows_in(sql, list(dict.fromkeys(paper_ids)), version.hex()):
            found[str(pid)] = bytes(blob)
        return found

    def save_paper_vectors(self, vectors: Mapping[str, bytes], version: bytes) -> None:
        """Store papers' vectors under one fit, in one transaction."""
        if not vectors:
            return
        with self.write():
            self.db.conn.executemany(
                "insert or replace into paper_vectors (paper_id, version, vector) values (?, ?, ?)",
                [(pid, version.hex(), blob) for pid, blob in vectors.items()],
            )

    def record_signals(
        self,
        sub_id: int,
        papers: Sequence[str],
        kind: SignalKind,
        now: datetime,
        source: str,
    ) -> int:
        """Record one opinion per paper (replacing an earlier one); a seed never overrides a
        More or Less already said. Returns how many rows changed."""
        if not papers:
            return 0
        verb = "insert or ignore" if kind is SignalKind.SEED else "insert or replace"
        at = time_text(now, "now")
        with self.write():
            cursor = self.db.conn.executemany(
                f"{verb} into reader_signals (subscriber_id, paper_id, kind, at, source)"
                " values (?, ?, ?, ?, ?)",
                [(sub_id, p, kind.value, at, source) for p in dict.fromkeys(papers)],
            )
            return cursor.rowcount

    def remove_signal(self, sub_id: int, paper_id: str) -> bool:
        """Undo: forget what the reader said about one paper."""
        with self.write():
            cursor = self.db.execute(
                "delete from reader_signals where subscriber_id = ? and paper_id = ?",
                [sub_id, paper_id],
            )
            return cursor.rowcount > 0

    def reader_signals(self, sub_id: int) -> list[Signal]:
        """What a reader said, newest first, with each paper's title."""
        sql = (
            "select s.paper_id, s.kind, s.at, s.source, coalesce(p.title, s.paper_id)"
            " from reader_signals s left join papers p on p.id = s.paper_id"
            " where s.subscriber_id = ? order by s.at desc, s.paper_id"
        )
        return [
            Signal(str(r[0]), SignalKind(r[1]), text_time(str(r[2])), str(r[3] or ""), str(r[4]))
            for r in self.db.execute(sql, [sub_id]).fetchall()
        ]

    def signals_of(self, sub_ids: Sequence[int]) -> dict[int, dict[str, SignalKind]]:
        """Each reader's opinions (paper id -> kind), for a batch; readers without any absent."""
        found: dict[int, dict[str, SignalKind]] = {}
        sql = (
            "select subscriber_id, paper_id, kind from reader_signals"
            " where subscriber_id in ({marks})"
        )
        for sid, pid, kind in self._rows_in(sql, sub_ids):
            found.setdefault(int(sid), {})[str(pid)] = SignalKind(kind)
        return found

    def follow_authors(self, sub_id: int, authors: Sequence[str], now: datetime) -> None:
        """Follow authors by name (spacing tidied; a repeat is ignored)."""
        names = [" ".join(a.split()) for a in authors if a.strip()]
        at = time_text(now, "now")
        with self.write():
            self.db.conn.executemany(
                "insert or ignore into followed_authors (subscriber_id, author, at)"
                " values (?, ?, ?)",
                [(sub_id, n[:200], at) for n in names],  # a name from a web form: bounded
            )

    def unfollow_author(self, sub_id: int, author: str) -> None:
        """Stop following an author named exactly as `followed_authors` lists them (the
        preferences page posts that name back); an unknown name changes nothing."""
        with self.write():
            self.db.execute(
                "delete from followed_authors where subscriber_id = ? and author = ?",
                [sub_id, author],
            )

    def followed_of(self, sub_ids: Sequence[int]) -> dict[int, list[str]]:
        """The authors each reader of a batch follows; readers following nobody absent."""
        found: dict[int, list[str]] = {}
        sql = (
            "select subscriber_id, author from followed_authors"
            " where subscriber_id in ({marks}) order by author"
        )
        for sid, author in self._rows_in(sql, sub_ids):
            found.setdefault(int(sid), []).append(str(author))
        return found

    def followed_authors(self, sub_id: int) -> list[str]:
        """The authors one reader follows, alphabetically, for their preferences page."""
        sql = "select author from followed_authors where subscriber_id = ? order by author"
        return [str(r[0]) for r in self.db.execute(sql, [sub_id]).fetchall()]

    def reader_profiles(self, sub_ids: Sequence[int]) -> dict[int, StoredProfile]:
        """Stored profiles of a batch of readers."""
        found: dict[int, StoredProfile] = {}
        sql = (
            "select subscriber_id, profile, fingerprint from reader_profiles"
            " where subscriber_id in ({marks})"
        )
        for sid, blob, fingerprint in self._rows_in(sql, sub_ids):
            found[int(sid)] = StoredProfile(bytes(blob), str(fingerprint))
        return found

    def save_profiles(self, profiles: Mapping[int, StoredProfile], now: datetime) -> None:
        """Store re-fitted profiles in one transaction."""
        if not profiles:
            return
        at = time_text(now, "now")
        with self.write():
            self.db.conn.executemany(
                "insert or replace into reader_profiles"
                " (subscriber_id, profile, fingerprint, fitted_at) values (?, ?, ?, ?)",
                [(sid, p.profile, p.fingerprint, at) for sid, p in profiles.items()],
            )

    def record_recommended(
        self, planned: Mapping[tuple[int, str], Sequence[PlannedRecommendation]]
    ) -> None:
        """Remember, on each (subscriber, edition) delivery, what was recommended and why."""
        if not planned:
            return
        with self.write():
            self.db.conn.executemany(
                # first plan wins: a delivery re-planned after a crash renders the same email
                "update deliveries set recommended = ? where subscriber_id = ? and edition = ?"
                " and recommended is null",
                [(_recs_json(recs), sid, ed) for (sid, ed), recs in planned.items()],
            )

    def arxiv_and_doi_matches(self, arxiv_ids: Sequence[str], dois: Sequence[str]) -> list[str]:
        """Ids of stored papers with one of these arXiv ids or DOIs (for resolving seeds)."""
        found = [r["id"] for r in self._select_in("papers", "id", arxiv_ids)]
        found += [r["id"] for r in self._select_in("papers", "arxiv_id", arxiv_ids)]
        # DOIs are case-insensitive by definition (the DOI Handbook): 10.1/ABC is 10.1/abc.
        sql = "select id from papers where lower(doi) in ({marks})"
        found += [str(r[0]) for r in self._rows_in(sql, [d.lower() for d in dois])]
        return list(dict.fromkeys(found))

    def all_titles(self) -> list[tuple[str, str]]:
        """(id, title) of every stored paper: seeds without an id are matched by title."""
        return [(str(a), str(b)) for a, b in self.db.execute("select id, title from papers")]


def planned_recommendations(row: Mapping[str, Any]) -> list[PlannedRecommendation]:
    """The recommendations a delivery row remembers (none for a row planned without)."""
    text = row.get("recommended")
    if not text:
        return []
    return [
        PlannedRecommendation(str(r["id"]), float(r["score"]), str(r["why"]))
        for r in json.loads(text)
    ]


def _recs_json(recs: Sequence[PlannedRecommendation]) -> str:
    return json.dumps(
        [{"id": r.paper_id, "score": round(r.score, 4), "why": r.why} for r in recs],
        ensure_ascii=False,
    )
