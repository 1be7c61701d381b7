"""The catalog: components from several sources, side-by-side versions, references and search.

Pure apart from reading the component folders it is given. Search runs on an index built
once (token -> components, plus a sorted vocabulary for prefix matches as the user types).
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .spec import STABILITIES, Component, ComponentError, InvalidComponent, load_component

BUILTIN_DIR = Path(__file__).parent / "builtin"
_TOKEN = re.compile(r"[a-z0-9]+")
_REF = re.compile(r"^([a-z][a-z0-9_]*)(?:@(\d+)(?:\.(\d+)(?:\.(\d+)(?:-([0-9A-Za-z.-]+))?)?)?)?$")

# Ranking tiers, best first; the brief's order, with "every word is in the name" between a
# name prefix and a tag so that "split" finds time_split before a component tagged "split".
EXACT, PREFIX, NAME_WORDS, TAG, TEXT = 5, 4, 3, 2, 1


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _norm(text: str) -> str:
    return "_".join(tokens(text))


@dataclass(frozen=True)
class Source:
    """A folder of component folders: `<root>/<name>/` or `<root>/<name>/<version>/`."""

    name: str
    root: Path
    kind: str = "directory"  # builtin | directory | git (git: a checkout fetched elsewhere)


BUILTIN = Source("builtin", BUILTIN_DIR, "builtin")


@dataclass(frozen=True)
class SearchHit:
    component: Component  # the version a plain `name` reference would pick, within the filters
    tier: int
    versions: tuple[str, ...]  # every matching version, newest first


def scan(source: Source) -> tuple[list[Component], list[ComponentError]]:
    """Every valid component under `source.root`; invalid folders are reported and skipped."""
    found: list[Component] = []
    errors: list[ComponentError] = []
    yamls = sorted({*source.root.glob("*/component.yaml"), *source.root.glob("*/*/component.yaml")})
    for path in yamls:
        try:
            found.append(load_component(path.parent, source=source.name))
        except InvalidComponent as e:
            errors.extend(e.errors)
    return found, errors


class Catalog:
    def __init__(self, components: Iterable[Component] = (), errors: Iterable[ComponentError] = ()):
        self.errors: list[ComponentError] = list(errors)
        self._by_name: dict[str, list[Component]] = defaultdict(list)
        for c in components:
            same = [o for o in self._by_name[c.name] if o.version == c.version]
            if same:
                # Sources are listed in priority order: the first keeps the version.
                self.errors.append(
                    ComponentError(
                        str(c.folder / "component.yaml"),
                        "version",
                        f"{c.ref} is already provided by source {same[0].source!r}; skipped",
                    )
                )
                continue
            self._by_name[c.name].append(c)
        for versions in self._by_name.values():
            versions.sort(key=lambda c: c.version, reverse=True)
        self._build_index()

    @classmethod
    def from_sources(cls, sources: Iterable[Source]) -> Catalog:
        components: list[Component] = []
        errors: list[ComponentError] = []
        for source in sources:
            found, errs = scan(source)
            components += found
            errors += errs
        return cls(components, errors)

    # -- lookup ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def versions(self, name: str) -> list[Component]:
        """Every version of `name`, newest first."""
        return list(self._by_name.get(name, ()))

    def __iter__(self):
        for name in self.names():
            yield from self._by_name[name]

    def __len__(self) -> int:
        return sum(map(len, self._by_name.values()))

    def resolve(self, ref: str) -> Component:
        """`name` -> latest stable; `name@1`, `name@1.2` -> newest release in that line;
        `name@1.2.3` (or with a pre-release) -> exactly that version."""
        m = _REF.match(ref.strip())
        if not m:
            raise LookupError(f"{ref!r} is not a reference (name, name@1.2 or name@1.2.3)")
        name, major, minor, patch, pre = m.groups()
        versions = self._by_name.get(name)
        if not versions:
            raise LookupError(f"no component named {name!r}")
        available = ", ".join(str(c.version) for c in versions)
        if major is None:
            for c in versions:
                if c.stability == "stable" and not c.version.prerelease:
                    return c
            raise LookupError(
                f"{name} has no stable version; pin one of: {available} (e.g. {versions[0].ref})"
            )
        want = [int(x) for x in (major, minor, patch) if x is not None]
        for c in versions:
            parts = [c.version.major, c.version.minor, c.version.patch][: len(want)]
            # A line reference (name@1.2) never picks a pre-release; an exact one may.
            if parts == want and c.version.prerelease == (pre or ""):
                return c
        raise LookupError(f"{ref!r} matches no version of {name}; available: {available}")

    # -- search ---------------------------------------------------------------------------

    def _build_index(self) -> None:
        self._all: list[Component] = [c for name in self.names() for c in self._by_name[name]]
        self._name_tokens: list[frozenset[str]] = []
        self._postings: dict[str, set[int]] = defaultdict(set)
        self._tag_postings: dict[str, set[int]] = defaultdict(set)
        for i, c in enumerate(self._all):
            name_toks = frozenset(tokens(c.name))
            self._name_tokens.append(name_toks)
            tag_toks = {t for tag in c.tags for t in tokens(tag)}
            text = " ".join(
                [c.summary, c.description, *c.categories]
                + [f"{p.name} {p.description}" for p in (*c.inputs, *c.outputs)]
            )
            for t in name_toks | tag_toks | set(tokens(text)):
                self._postings[t].add(i)
            for t in tag_toks:
                self._tag_postings[t].add(i)
        self._vocab = sorted(self._postings)

    def _prefixed(self, prefix: str) -> list[str]:
        lo = bisect.bisect_left(self._vocab, prefix)
        hi = bisect.bisect_left(self._vocab, prefix + "\x7f")
        return self._vocab[lo:hi]

    def _tier(self, i: int, query: str, qtoks: list[str]) -> int:
        name = self._all[i].name
        if name == query:
            return EXACT
        if name.startswith(query):
            return PREFIX
        names = self._name_tokens[i]
        if all(any(n.startswith(q) for n in names) for q in qtoks):
            return NAME_WORDS
        if any(i in self._tag_postings.get(t, ()) for q in qtoks for t in self._prefixed(q)):
            return TAG
        return TEXT

    def search(
        self,
        query: str = "",
        *,
        category: str | None = None,
        stability: str | None = None,
        source: str | None = None,
        limit: int | None = None,
    ) -> list[SearchHit]:
        """Components matching every word of `query` (a word matches as a prefix, so results
        follow typing), one hit per name, best first: exact name, name prefix, words in the
        name, tag, other text; ties go stable > beta > experimental > deprecated, then name."""
        qtoks = tokens(query)
        if qtoks:
            matched: set[int] | None = None
            for q in qtoks:
                hits = set().union(*(self._postings[t] for t in self._prefixed(q)))
                matched = hits if matched is None else matched & hits
                if not matched:
                    return []
            candidates = sorted(matched or ())
        else:
            candidates = list(range(len(self._all)))
        query_name = _norm(query)
        best: dict[str, tuple[int, list[Component]]] = {}
        for i in candidates:
            c = self._all[i]
            if category is not None and category not in c.categories:
                continue
            if stability is not None and c.stability != stability:
                continue
            if source is not None and c.source != source:
                continue
            tier = self._tier(i, query_name, qtoks) if qtoks else TEXT
            prev = best.get(c.name)
            if prev is None:
                best[c.name] = (tier, [c])
            else:
                prev[1].append(c)
                best[c.name] = (max(prev[0], tier), prev[1])
        hits = []
        for tier, versions in best.values():
            versions.sort(key=lambda c: c.version, reverse=True)
            shown = next(
                (c for c in versions if c.stability == "stable" and not c.version.prerelease),
                versions[0],
            )
            hits.append(SearchHit(shown, tier, tuple(str(c.version) for c in versions)))
        hits.sort(
            key=lambda h: (-h.tier, STABILITIES.index(h.component.stability), h.component.name)
        )
        return hits[:limit] if limit is not None else hits


def default_catalog(extra: Iterable[Source] = ()) -> Catalog:
    """The built-in components first, then an organisation's sources in the order given."""
    return Catalog.from_sources([BUILTIN, *extra])
