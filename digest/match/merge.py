"""A batch of subscribers merged as arrays: each subscriber's queries are rows of the rank
table, and their top k is the k lowest ranks over those rows, one per paper. Decides who may
take this path and merges once per filter signature; Match objects are the matcher's job.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from digest.match.ranking import Ints, RankedQuery, Rankings, RankTable
from digest.models import Subscriber


@dataclass(slots=True)
class Picks:
    """A batch's merged results: subscriber n's ranks are ranks[at[n] : at[n] + count[n]]
    (at -1: take the one-by-one path); kept flat so a batch allocates few objects."""

    at: list[int]
    count: list[int]
    total: list[int]
    ranks: list[int]
    shared: set[int]  # the `at` of every result more than one subscriber gets
    table: RankTable  # what the ranks index: `table.paper[r]` at `table.score[r]`
    merged: int = 0  # subscribers merged as arrays: one per filter signature


def pick(
    rankings: Rankings,
    subs: Sequence[Subscriber],
    sources: Sequence[tuple[RankedQuery, ...]],
    sent: Mapping[int, Collection[str]],
) -> Picks:
    """Each subscriber's chosen ranks and total, merged once per filter signature; a floor,
    no cap or an already-sent paper of this edition leaves them to the one-by-one path."""
    picked = Picks([-1] * len(subs), [0] * len(subs), [0] * len(subs), [], set(), rankings.table)
    first: dict[tuple[int, tuple[RankedQuery, ...]], int] = {}
    owner = [-1] * len(subs)
    for n, sub in enumerate(subs):
        mine = sources[n]
        if sub.min_upvotes or sub.max_papers < 1 or not mine:
            continue
        if sent:
            got = sent.get(sub.id or -1)
            if got and rankings.has_any(got):
                continue
        owner[n] = first.setdefault((sub.max_papers, mine), n)
    if first:
        picked.table = rankings.ranks(max(subs[n].max_papers for n in first.values()))
        _merge_firsts(list(first.values()), subs, sources, picked)
        for n, found in enumerate(owner):
            if found >= 0 and found != n:
                picked.at[n] = picked.at[found]
                picked.count[n] = picked.count[found]
                picked.total[n] = picked.total[found]
                picked.shared.add(picked.at[found])
    return picked


def _merge_firsts(
    firsts: list[int],
    subs: Sequence[Subscriber],
    sources: Sequence[tuple[RankedQuery, ...]],
    picked: Picks,
) -> None:
    """Merge these subscribers (one per signature), grouped by how many queries they have,
    into `picked`."""
    groups: dict[int, list[int]] = {}
    for n in firsts:
        groups.setdefault(len(sources[n]), []).append(n)
    picked.merged += len(firsts)
    table = picked.table
    for group in groups.values():
        width = len(sources[group[0]])
        qids = np.array([s.qid for n in group for s in sources[n]], np.int64)
        qids = qids.reshape(len(group), width)
        caps = np.array([subs[n].max_papers for n in group], np.int64)
        ranks, counts = merge_ranks(table, qids, caps)
        union = np.bitwise_or.reduce(table.selected[qids], axis=1)
        totals = np.bitwise_count(union).sum(axis=1, dtype=np.int64).tolist()
        base, cap = len(picked.ranks), ranks.shape[1]
        picked.ranks.extend(ranks.ravel().tolist())
        for row, (n, count) in enumerate(zip(group, counts.tolist(), strict=True)):
            picked.at[n] = base + row * cap
            picked.count[n] = count
            picked.total[n] = totals[row]


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
