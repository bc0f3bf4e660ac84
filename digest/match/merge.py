"""A batch of subscribers merged as arrays: each subscriber's queries are rows of the rank
table, and their top k is the k lowest ranks over those rows, one per paper. Decides who may
take this path and merges once per filter signature; Match objects are the matcher's job.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from digest.match.ranking import Ints, Rankings, RankTable
from digest.models import Subscriber


@dataclass(slots=True)
class Picks:
    """A batch's merged results: subscriber n's ranks are ranks[at[n] : at[n] + count[n]]
    and their papers' ids ids[at[n] : ...] (at -1: take the one-by-one path); kept flat so
    a batch allocates few objects."""

    at: list[int]
    count: list[int]
    total: list[int]
    ranks: list[int]
    ids: list[str]
    shared: set[int]  # the `at` of every result more than one subscriber gets
    table: RankTable  # what the ranks index: `table.paper_of[r]` at `table.score[r]`
    merged: int = 0  # subscribers merged as arrays: one per filter signature


def pick(
    rankings: Rankings,
    subs: Sequence[Subscriber],
    qids: Sequence[tuple[int, ...]],
    sent: Mapping[int, Collection[str]],
) -> Picks:
    """Each subscriber's chosen ranks and total, merged once per signature (cap and rank
    table rows); a floor, no cap or an already-sent paper of this edition leaves them to
    the one-by-one path."""
    size = len(subs)
    first: dict[tuple[int, tuple[int, ...]], int] = {}
    owner = [-1] * size
    has_any = rankings.has_any
    for n, (sub, mine) in enumerate(zip(subs, qids, strict=True)):
        if sub.min_upvotes or sub.max_papers < 1 or not mine:
            continue
        if sent:
            got = sent.get(sub.id or -1)
            if got and has_any(got):
                continue
        owner[n] = first.setdefault((sub.max_papers, mine), n)
    if not first:
        return Picks([-1] * size, [0] * size, [0] * size, [], [], set(), rankings.table)
    table = rankings.ranks(max(subs[n].max_papers for n in first.values()))
    at = np.full(size, -1, np.int64)
    count, total = np.zeros(size, np.int64), np.zeros(size, np.int64)
    flat = _merge_firsts(list(first.values()), subs, qids, table, (at, count, total))
    own = np.array(owner, np.int64)
    taken = np.flatnonzero(own >= 0)
    mine_at = own[taken]
    at[taken], count[taken], total[taken] = at[mine_at], count[mine_at], total[mine_at]
    shared = at[np.flatnonzero(np.bincount(mine_at, minlength=size) > 1)]
    ids = table.ids[flat].tolist()
    picked = Picks(at.tolist(), count.tolist(), total.tolist(), flat.tolist(), ids, set(), table)
    picked.shared, picked.merged = set(shared.tolist()), len(first)
    return picked


def _merge_firsts(
    firsts: list[int],
    subs: Sequence[Subscriber],
    qids: Sequence[tuple[int, ...]],
    table: RankTable,
    into: tuple[Ints, Ints, Ints],
) -> Ints:
    """Merge these subscribers (one per signature), grouped by how many queries they have:
    their (at, count, total) go `into` those arrays; returns the flat ranks."""
    groups: dict[int, list[int]] = {}
    for n in firsts:
        groups.setdefault(len(qids[n]), []).append(n)
    at, count, total = into
    flat, base = [], 0
    for width, group in groups.items():
        rows_of = np.array([qids[n] for n in group], np.int64).reshape(len(group), width)
        caps = np.array([subs[n].max_papers for n in group], np.int64)
        ranks, counts = merge_ranks(table, rows_of, caps)
        union = np.bitwise_or.reduce(table.selected[rows_of], axis=1)
        rows = np.array(group, np.int64)
        at[rows] = base + np.arange(len(group), dtype=np.int64) * ranks.shape[1]
        count[rows] = counts
        total[rows] = np.bitwise_count(union).sum(axis=1, dtype=np.int64)
        flat.append(ranks.ravel())
        base += ranks.size
    return np.concatenate(flat)


def merge_ranks(table: RankTable, qids: Ints, caps: Ints) -> tuple[Ints, Ints]:
    """Each row's best ranks over its queries' lists, one per paper, at most its cap:
    a paper's best score is its lowest rank, so sorting by (paper, rank) and dropping
    all but the first of each paper leaves exactly the papers `for_subscriber` merges."""
    rows, width = qids.shape
    cap = int(caps.max())
    top = table.top[qids, :cap]  # (rows, width, at most cap)
    ranks = top.reshape(rows, width * top.shape[2])
    if width > 1:
        keyed = (table.paper_of[ranks] << 32) | ranks
        keyed.sort(axis=1)
        ranks = keyed & 0xFFFFFFFF
        ranks[:, 1:][(keyed[:, 1:] >> 32) == (keyed[:, :-1] >> 32)] = table.end
        ranks.sort(axis=1)
        ranks = ranks[:, :cap]
    return ranks, np.minimum((ranks < table.end).sum(axis=1), caps)
