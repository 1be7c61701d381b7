"""The catalog: components from several sources, side-by-side versions, references and search.

Pure apart from reading the component folders it is given (and, when asked, keeping a scan
cache of them). Search runs on an index built
once (token -> components, plus a sorted vocabulary for prefix matches as the user types).
"""

from __future__ import annotations

import bisect
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .builtin_index import BUILTIN_DIR, ShippedIndex
from .scancache import ScanCache, cache_file, signature
from .spec import STABILITIES, Component, ComponentError, InvalidComponent, load_component

_TOKEN = re.compile(r"[a-z0-9]+")
_REF = re.compile(r"^([a-z][a-z0-9_]*)(?:@(\d+)(?:\.(\d+)(?:\.(\d+)(?:-([0-9A-Za-z.-]+))?)?)?)?$")

# Ranking tiers, best first; the brief's order, with "every word is in the name" between a
# name prefix and a tag so that "split" finds time_split before a component tagged "split".
EXACT, PREFIX, NAME_WORDS, TAG, TEXT = 5, 4, 3, 2, 1


def is_exact_ref(ref: str) -> bool:
    """True for ``name@1.2.3`` (or with a pre-release): the form a pinned cell uses."""
    m = _REF.match(ref.strip())
    return bool(m and m.group(4) is not None)


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


@dataclass(frozen=True)
class Problem:
    """A component a source could not offer, for the people who maintain that source:
    `file` is relative to the source's root (never a server path)."""

    source: str
    file: str
    key: str
    message: str


def _listing(folder: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError:
        return []


def _component_folders(
    root: Path,
) -> tuple[list[tuple[Path, list[os.DirEntry[str]]]], list[ComponentError]]:
    """Folders `<root>/<name>/` and `<root>/<name>/<version>/` that hold a component.yaml,
    each with its listing, in path order. Symbolic links are not followed: a folder that is
    one, or holds one, is reported instead (it could make the catalog read, and echo in
    its errors, files from elsewhere on the server)."""
    found: list[tuple[Path, list[os.DirEntry[str]]]] = []
    refused: list[ComponentError] = []

    def consider(folder: str, listing: list[os.DirEntry[str]]) -> None:
        if not any(e.name == "component.yaml" for e in listing):
            return
        links = [e.name for e in listing if e.is_symlink()]
        if links:
            message = f"holds a symbolic link ({links[0]}); links are not followed, skipped"
            refused.append(ComponentError(os.path.join(folder, "component.yaml"), "", message))
        else:
            found.append((Path(folder), listing))

    def linked(entry: os.DirEntry[str]) -> None:
        if entry.is_dir() and os.path.exists(os.path.join(entry.path, "component.yaml")):
            file = os.path.join(entry.path, "component.yaml")
            refused.append(ComponentError(file, "", "links outside the source; skipped"))

    for top in _listing(str(root)):
        if top.is_symlink():
            linked(top)
        elif top.is_dir(follow_symlinks=False):
            listing = _listing(top.path)
            consider(top.path, listing)
            for sub in listing:
                if sub.is_symlink():
                    linked(sub)
                elif sub.is_dir(follow_symlinks=False):
                    consider(sub.path, _listing(sub.path))
    found.sort(key=lambda fl: str(fl[0] / "component.yaml"))
    return found, refused


def scan(
    source: Source, cache_dir: Path | None = None, unsaved: list[ScanCache] | None = None
) -> tuple[list[Component], list[ComponentError]]:
    """Every valid component under `source.root`; invalid folders are reported and skipped.

    With `cache_dir`, folders whose files are unchanged since the last scan are not
    validated again (see `scancache`). With `unsaved`, the cache is appended to it rather
    than written, for the caller to `save()` once the catalog is in use."""
    found: list[Component] = []
    folders, errors = _component_folders(source.root)
    cache = ScanCache(cache_file(cache_dir, source.name), source.root) if cache_dir else None
    # the package's own built-ins come validated in the package (`builtin_index`)
    shipped = ShippedIndex(source.root) if source.root == BUILTIN_DIR else None
    for folder, listing in folders:
        if shipped is not None and (known := shipped.get(folder, listing, source.name)):
            found.append(known)
            continue
        sig = signature(listing) if cache else None  # taken before the files are read
        hit = cache.get(folder, source.name, sig) if cache else None
        if hit is None:
            component, errs = None, []
            try:
                component = load_component(folder, source=source.name)
            except InvalidComponent as e:
                errs = e.errors
            if cache:
                cache.put(folder, sig, component, errs)
        else:
            component, errs = hit
        if component is not None:
            found.append(component)
        errors.extend(errs)
    if cache and unsaved is not None:
        unsaved.append(cache)
    elif cache:
        cache.save()
    return found, errors


class Catalog:
    def __init__(
        self,
        components: Iterable[Component] = (),
        errors: Iterable[ComponentError] = (),
        sources: Iterable[Source] = (),
    ):
        self.errors: list[ComponentError] = list(errors)
        self.sources: tuple[Source, ...] = tuple(sources)  # in priority order, when known
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
    def from_sources(
        cls,
        sources: Iterable[Source],
        cache_dir: Path | None = None,
        unsaved: list[ScanCache] | None = None,
    ) -> Catalog:
        sources = list(sources)
        components: list[Component] = []
        errors: list[ComponentError] = []
        for source in sources:
            found, errs = scan(source, cache_dir, unsaved)
            components += found
            errors += errs
        return cls(components, errors, sources)

    def source_kind(self, name: str) -> str:
        return next((s.kind for s in self.sources if s.name == name), "directory")

    def counts(self) -> dict[str, int]:
        """Number of components (name and version pairs) each source provides."""
        out: dict[str, int] = defaultdict(int)
        for c in self._all:
            out[c.source] += 1
        return dict(out)

    def problems(self) -> list[Problem]:
        """`errors` with each file made relative to the source it came from."""
        roots = sorted(self.sources, key=lambda s: -len(s.root.parts))
        out = []
        for e in self.errors:
            path = Path(e.file)
            for s in roots:
                resolved_root = s.root.resolve()
                if path.is_relative_to(s.root):
                    rel = path.relative_to(s.root)
                elif path.is_relative_to(resolved_root):
                    rel = path.relative_to(resolved_root)
                else:
                    continue
                message = e.message.replace(str(s.root), ".").replace(str(resolved_root), ".")
                out.append(Problem(s.name, rel.as_posix(), e.key, message))
                break
            else:
                out.append(Problem("", path.name, e.key, e.message))
        return out

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
        self._name_postings: dict[str, set[int]] = defaultdict(set)
        for i, c in enumerate(self._all):
            name_toks = frozenset(tokens(c.name))
            self._name_tokens.append(name_toks)
            for t in name_toks:
                self._name_postings[t].add(i)
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

    def _union(self, postings: dict[str, set[int]], words: list[list[str]]) -> list[set[int]]:
        """Per query word, the versions having a token it is a prefix of."""
        return [set().union(*(postings.get(t, ()) for t in w)) for w in words]

    def _tier(self, i: int, query: str, name_sets: list[set[int]], tag_set: set[int]) -> int:
        name = self._all[i].name
        if name == query:
            return EXACT
        if name.startswith(query):
            return PREFIX
        if all(i in s for s in name_sets):
            return NAME_WORDS
        if i in tag_set:
            return TAG
        return TEXT

    def _matching(self, qtoks: list[str]) -> list[int]:
        """Indexes of the versions matching every query word (as a prefix), in name order."""
        if not qtoks:
            return list(range(len(self._all)))
        matched: set[int] | None = None
        for q in qtoks:
            hits = set().union(*(self._postings[t] for t in self._prefixed(q)))
            matched = hits if matched is None else matched & hits
            if not matched:
                return []
        return sorted(matched or ())

    def facets(
        self,
        query: str = "",
        *,
        category: str | None = None,
        stability: str | None = None,
        source: str | None = None,
    ) -> dict[str, list[tuple[str, int]]]:
        """How many components (names) each category, stability and source would show.

        Each dimension is counted with the query and the other two filters applied, not its
        own, so the counts say what picking another value would give. Most first, then name.
        """
        chosen = {"categories": category, "stabilities": stability, "sources": source}
        counts: dict[str, dict[str, set[str]]] = {k: defaultdict(set) for k in chosen}
        for i in self._matching(tokens(query)):
            c = self._all[i]
            values = {
                "categories": c.categories,
                "stabilities": (c.stability,),
                "sources": (c.source,),
            }
            passes = {
                "categories": category is None or category in c.categories,
                "stabilities": stability is None or c.stability == stability,
                "sources": source is None or c.source == source,
            }
            for dim, vals in values.items():
                if all(ok for other, ok in passes.items() if other != dim):
                    for v in vals:
                        counts[dim][v].add(c.name)
        return {
            dim: sorted(
                ((v, len(names)) for v, names in by.items()), key=lambda vc: (-vc[1], vc[0])
            )
            for dim, by in counts.items()
        }

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
        candidates = self._matching(qtoks)
        query_name = _norm(query)
        # the sets each tier asks about, once per query rather than once per candidate
        words = [self._prefixed(q) for q in qtoks]
        name_sets = self._union(self._name_postings, words)
        tag_set = set().union(*self._union(self._tag_postings, words))
        best: dict[str, tuple[int, list[Component]]] = {}
        for i in candidates:
            c = self._all[i]
            if category is not None and category not in c.categories:
                continue
            if stability is not None and c.stability != stability:
                continue
            if source is not None and c.source != source:
                continue
            tier = self._tier(i, query_name, name_sets, tag_set) if qtoks else TEXT
            prev = best.get(c.name)
            if prev is None:
                best[c.name] = (tier, [c])
            else:
                prev[1].append(c)
                best[c.name] = (max(prev[0], tier), prev[1])
        hits = []
        for tier, versions in best.values():
            # candidates come in index order: by name, each name's versions newest first
            shown = next(
                (c for c in versions if c.stability == "stable" and not c.version.prerelease),
                versions[0],
            )
            hits.append(SearchHit(shown, tier, tuple(str(c.version) for c in versions)))
        hits.sort(
            key=lambda h: (-h.tier, STABILITIES.index(h.component.stability), h.component.name)
        )
        return hits[:limit] if limit is not None else hits


def default_catalog(
    extra: Iterable[Source] = (),
    cache_dir: Path | None = None,
    unsaved: list[ScanCache] | None = None,
) -> Catalog:
    """The built-in components first, then an organisation's sources in the order given
    (`cache_dir` and `unsaved` as for `scan`)."""
    return Catalog.from_sources([BUILTIN, *extra], cache_dir, unsaved)
