"""Seeds: the papers a reader says they like, read from what people actually paste or export:
arXiv ids and URLs, DOIs, BibTeX (braces, LaTeX accents, entries without ids) and Zotero or
Mendeley CSV exports; then resolved against papers we hold.

Pure: bytes and Papers in, typed values out; no store, no I/O. Hostile input is bounded: an
oversized file is one RecommendError, spreadsheet formulas are ignored and counted.
"""

from __future__ import annotations

import csv
import enum
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from digest.models import Paper
from digest.recommend.bibtex import bibtex_entries, latex_to_text
from digest.recommend.errors import RecommendError

__all__ = [
    "MAX_SEEDS",
    "MAX_SEED_BYTES",
    "MAX_SKIPPED",
    "MAX_TITLE",
    "Resolution",
    "SeedFormat",
    "SeedKind",
    "SeedRef",
    "Seeds",
    "normalise_title",
    "parse_seeds",
    "resolve_seeds",
]

MAX_SEED_BYTES = 5 * 1024 * 1024
MAX_SEEDS = 2000
MAX_SKIPPED = 20
MAX_TITLE = 500

# arXiv ids: YYMM.NNNN (NNNNN since 2015), and before April 2007 archive[.SUB]/YYMMNNN
# (hep-th/9901001, math.GT/0309136). A bare id must not sit inside a longer number, a path
# or a DOI: 10.1145/3301.12345 holds no arXiv id.
_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z][a-z\-]+(?:\.[A-Z]{2})?/\d{7}"
_ARXIV_ID = re.compile(rf"(?<![\w./])({_NEW_ID}|{_OLD_ID})(?:v\d+)?(?![\w])")
_ARXIV_URL = re.compile(
    rf"(?:arxiv\.org/(?:abs|pdf|html)/|huggingface\.co/papers/|alphaxiv\.org/abs/)"
    rf"({_NEW_ID}|{_OLD_ID})(?:v\d+)?",
    re.IGNORECASE,
)
_ARXIV_LABEL = re.compile(rf"arxiv\s*+[:.]?\s*+({_NEW_ID}|{_OLD_ID})(?:v\d+)?", re.IGNORECASE)
# arXiv registers DOIs of its own (10.48550/arXiv.ID): an id, not a DOI to look up.
_ARXIV_DOI = re.compile(rf"^10\.48550/arxiv\.({_NEW_ID}|{_OLD_ID})(?:v\d+)?$", re.IGNORECASE)
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"'<>{}]+)", re.IGNORECASE)
# A cell starting so is a formula to a spreadsheet (CSV injection): its text is never kept.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class SeedFormat(enum.Enum):
    """How a seeds file is read: by its file name's extension, else by its first lines."""

    TEXT = "text"
    BIBTEX = "bibtex"
    CSV = "csv"


class SeedKind(enum.Enum):
    """The identifier a reference carries, most trusted first: an arXiv id or a DOI names
    one paper; a title is matched after normalising, and may miss."""

    ARXIV = "arxiv"
    DOI = "doi"
    TITLE = "title"


@dataclass(frozen=True, slots=True)
class SeedRef:
    """One paper the reader named: `value` is an arXiv id without version, a lower-cased DOI
    or a title as written (accents decoded); `where` says where in the file (for messages)."""

    kind: SeedKind
    value: str
    where: str


@dataclass(slots=True)
class Seeds:
    """What a seeds file held: references in file order, and why parts were skipped (the
    first MAX_SKIPPED reasons kept, every one counted in `skipped_count`)."""

    format: SeedFormat
    refs: list[SeedRef] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    skipped_count: int = 0

    def skip(self, reason: str) -> None:
        """Count a part of the file that named no paper; its reason is kept only while fewer
        than MAX_SKIPPED are, so a hostile file cannot grow what the reader is shown."""
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED:
            self.skipped.append(reason)

    def summary(self) -> str:
        """One line: how many papers the file named and what was skipped, if anything."""
        line = f"{len(self.refs)} paper(s) named in the {self.format.value} seeds"
        if self.skipped_count:
            more = self.skipped_count - 1
            line += f"; skipped {self.skipped[0]}" + (f" and {more} more" if more else "")
        return line


@dataclass(slots=True)
class Resolution:
    """Seeds matched to papers we hold (`found`: paper ids, no repeats) and those we lack."""

    found: list[str] = field(default_factory=list)
    unknown: list[SeedRef] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI or the preferences page."""
        line = f"{len(self.found)} seed paper(s) added"
        if self.unknown:
            names = ", ".join(_shown(r) for r in self.unknown[:5])
            more = f" and {len(self.unknown) - 5} more" if len(self.unknown) > 5 else ""
            line += f"; {len(self.unknown)} not found among stored papers: {names}{more}"
        return line


def _shown(ref: SeedRef) -> str:
    text = ref.value if len(ref.value) <= 60 else ref.value[:57] + "..."
    return f"'{text}'" if ref.kind is SeedKind.TITLE else text


# ---------------------------------------------------------------- text and identifiers


def normalise_title(title: str) -> str:
    """A title reduced for matching: accents and case folded, punctuation and spacing ignored,
    so "{BERT}: Pre-training..." from BibTeX meets "BERT: Pre-Training..." from arXiv. Every
    script's letters and digits are kept: "α-OPSD" is not "β-OPSD", and a Chinese title is
    not the empty key."""
    # lower() last: casefold maps Cherokee to upper case
    folded = _without_marks(_without_marks(title).casefold()).lower()
    return " ".join(re.findall(r"[^\W_]+", folded))


def _without_marks(text: str) -> str:
    """Compatibility-decomposed, with accents and other combining marks dropped."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if unicodedata.category(c)[0] != "M")


def _arxiv_in(text: str) -> str | None:
    for pattern in (_ARXIV_URL, _ARXIV_LABEL):
        m = pattern.search(text)
        if m:
            return m.group(1)
    return None


def _doi_in(text: str) -> str | None:
    m = _DOI.search(text)
    return m.group(1).rstrip(".,;)]").lower() if m else None


def _ref_from_ids(texts: Iterable[str], where: str, bare_id: bool) -> SeedRef | None:
    """The best identifier among some fields: an arXiv id beats a DOI (a DOI of an arXiv
    paper, 10.48550/arXiv.X, is turned into its arXiv id)."""
    texts = [t for t in texts if t]
    for text in texts:
        found = _arxiv_in(text)
        if found is None and bare_id:
            m = _ARXIV_ID.search(text)
            found = m.group(1) if m else None
        if found:
            return SeedRef(SeedKind.ARXIV, found, where)
    for text in texts:
        doi = _doi_in(text)
        if doi:
            m = _ARXIV_DOI.match(doi)
            if m:
                return SeedRef(SeedKind.ARXIV, m.group(1), where)
            return SeedRef(SeedKind.DOI, doi, where)
    return None


# ---------------------------------------------------------------- formats


class _Refs(list[SeedRef]):
    """The references found so far; parsing stops as soon as there are too many."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def append(self, ref: SeedRef) -> None:
        if len(self) >= MAX_SEEDS:
            raise RecommendError(
                f"seeds: {self.name or 'the file'} names more than {MAX_SEEDS} papers: "
                "keep the ones that describe what you want to read"
            )
        super().append(ref)


def _decode(data: bytes) -> str:
    # Excel's "Unicode text" is UTF-16 with a BOM; its plain CSV uses the Windows code page
    # (cp1252 in Western locales), which is not UTF-8.
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _detect(text: str, name: str) -> SeedFormat:
    lower = name.lower()
    if lower.endswith((".bib", ".bibtex")):
        return SeedFormat.BIBTEX
    if lower.endswith(".csv"):
        return SeedFormat.CSV
    if re.search(r"^\s*@\s*[a-zA-Z]+\s*[{(]", text, re.MULTILINE):
        return SeedFormat.BIBTEX
    first = text.lstrip().split("\n", 1)[0].lower()
    if "," in first and re.search(r"\b(title|doi|key|item type|url)\b", first):
        return SeedFormat.CSV
    return SeedFormat.TEXT


def _parse_text(text: str, out: Seeds) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for token in re.split(r"[\s,;]+", line):
            if not token:
                continue
            ref = _ref_from_ids([token], f"line {n}", bare_id=True)
            if ref is None:
                out.skip(f"line {n}: '{token[:60]}' is not an arXiv id, URL or DOI")
            else:
                out.refs.append(ref)


def _add_ref(out: Seeds, ref: SeedRef | None, title: str, where: str) -> None:
    """Keep `ref`, or else the title as a reference; an entry or row with neither is skipped."""
    if ref is None and len(title) > MAX_TITLE:
        out.skip(f"{where}: a title of {len(title)} characters is not a title")
        return
    if ref is None and title:
        ref = SeedRef(SeedKind.TITLE, latex_to_text(title), where)
    if ref is None:
        out.skip(f"{where}: no arXiv id, DOI or title")
    else:
        out.refs.append(ref)


def _parse_bibtex(text: str, out: Seeds) -> None:
    for line, _kind, key, fields in bibtex_entries(text):
        where = f"entry {key or '?'} (line {line})"
        ids = [fields.get(k, "") for k in ("arxivid", "arxiv", "eprint")]
        archive = fields.get("archiveprefix", "") + fields.get("eprinttype", "")
        eprint = fields.get("eprint", "").strip()
        if eprint and "arxiv" in archive.lower():
            ids.insert(0, f"arXiv:{eprint}")
        ids += [fields.get(k, "") for k in ("doi", "url", "journal", "note", "howpublished")]
        # A bare number is an arXiv id only in a field meant for one: in a URL, journal or
        # note, "2101.12345" may be pages or a report number.
        ref = _ref_from_ids(ids[:3], where, bare_id=True) or _ref_from_ids(ids, where, False)
        title = fields.get("title", "")
        _add_ref(out, ref, title, where)


_ID_COLUMNS = ("arxiv id", "arxivid", "arxiv", "eprint", "archive id")
_OTHER_COLUMNS = ("doi", "url", "extra", "notes", "note", "archive location", "publication title")


def _parse_csv(text: str, out: Seeds) -> None:
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None:
        return
    names = [h.strip().lower() for h in header]
    if not any(h in names for h in ("title", "doi", "url", *_ID_COLUMNS)):
        out.skip("the CSV has no Title, DOI, URL or arXiv ID column")
        return
    n = 1
    while True:
        n += 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as ex:
            out.skip(f"row {n}: not readable as CSV ({ex}); the rows after it were not read")
            return
        where = f"row {n}"
        cells: dict[str, str] = {}
        for name, value in zip(names, row, strict=False):
            if value.startswith(_FORMULA_START) and value.strip() not in ("", "-"):
                out.skip(f"{where}, {name or 'a column'}: a formula was ignored")
                continue
            cells[name] = value.strip()
        if not any(cells.values()):
            continue
        ids = [cells.get(c, "") for c in _ID_COLUMNS]
        ref = _ref_from_ids(ids, where, bare_id=True)
        ref = ref or _ref_from_ids([cells.get(c, "") for c in _OTHER_COLUMNS], where, False)
        title = cells.get("title", "")
        _add_ref(out, ref, title, where)


def parse_seeds(data: bytes, name: str = "") -> Seeds:
    """Read a seeds file or pasted text; `name` (a file name) helps pick the format.

    Raises RecommendError for a file over MAX_SEED_BYTES or with more than MAX_SEEDS papers:
    a whole library is not a list of favourites, and parsing it would hold the web worker.
    """
    if len(data) > MAX_SEED_BYTES:
        raise RecommendError(
            f"seeds: {name or 'the file'} is {len(data) / 1e6:.1f} MB, over the "
            f"{MAX_SEED_BYTES // (1024 * 1024)} MB limit: export only the papers you want as seeds"
        )
    text = _decode(data).replace("\x00", "")
    out = Seeds(_detect(text, name), _Refs(name))
    {
        SeedFormat.TEXT: _parse_text,
        SeedFormat.BIBTEX: _parse_bibtex,
        SeedFormat.CSV: _parse_csv,
    }[out.format](text, out)
    out.refs = list(out.refs)
    return out


def _arxiv_of(paper: Paper) -> str | None:
    if paper.arxiv_id:
        return paper.arxiv_id
    m = _ARXIV_ID.fullmatch(paper.id) if paper.id else None
    return m.group(1) if m else None


def resolve_seeds(refs: Sequence[SeedRef], papers: Sequence[Paper]) -> Resolution:
    """Match references to stored papers: arXiv id, then DOI, then the normalised title."""
    by_arxiv: dict[str, str] = {}
    by_doi: dict[str, str] = {}
    by_title: dict[str, str] = {}
    for p in papers:
        arxiv_id = _arxiv_of(p)
        if arxiv_id:
            by_arxiv.setdefault(re.sub(r"v\d+$", "", arxiv_id), p.id)
        if p.doi:
            by_doi.setdefault(p.doi.strip().lower(), p.id)
        if key := normalise_title(p.title or ""):  # never "": a title of no words names none
            by_title.setdefault(key, p.id)
    out, seen = Resolution(), set()
    for ref in refs:
        if ref.kind is SeedKind.ARXIV:
            found = by_arxiv.get(ref.value)
        elif ref.kind is SeedKind.DOI:
            found = by_doi.get(ref.value)
        else:
            found = by_title.get(normalise_title(ref.value))
        if found is None:
            out.unknown.append(ref)
        elif found not in seen:
            seen.add(found)
            out.found.append(found)
    return out
