"""Catalog: sources, side-by-side versions, references, search ranking and filters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mlfactory.components.catalog import (
    BUILTIN,
    EXACT,
    NAME_WORDS,
    PREFIX,
    TAG,
    TEXT,
    Catalog,
    Source,
    default_catalog,
)


def make(
    root: Path,
    name: str,
    version: str = "1.0.0",
    *,
    stability: str = "stable",
    summary: str = "Does a thing.",
    tags: list[str] | None = None,
    categories: list[str] | None = None,
    inputs: list[dict] | None = None,
    folder: str | None = None,
) -> Path:
    path = root / (folder or f"{name}/{version}")
    path.mkdir(parents=True)
    inputs = inputs if inputs is not None else [{"name": "x", "type": "any", "description": "in"}]
    doc = {
        "name": name,
        "version": version,
        "summary": summary,
        "categories": categories or ["misc"],
        "tags": tags or [],
        "stability": stability,
        "owners": ["team-a"],
        "source": f"{name}.py",
        "entry_point": name,
        "inputs": inputs,
        "outputs": [{"name": "out", "type": "any", "description": "out"}],
        "example": f"{name}(1)",
        "last_verified": "2026-11-01",
    }
    (path / "component.yaml").write_text(yaml.safe_dump(doc))
    params = ", ".join(p["name"] for p in inputs)
    (path / f"{name}.py").write_text(
        f"VERSION = {version!r}\n\n\ndef {name}({params}):\n    return VERSION\n"
    )
    (path / "README.md").write_text(f"# {name}\n")
    return path


def names(hits) -> list[str]:
    return [h.component.name for h in hits]


@pytest.fixture
def catalog(tmp_path) -> Catalog:
    make(tmp_path, "split", summary="Split rows in two.")
    make(tmp_path, "split_time", summary="Split rows by time.")
    make(tmp_path, "stratified_split", summary="Keep class shares.", stability="beta")
    make(tmp_path, "time_split_exp", summary="Newer time splitter.", stability="experimental")
    make(tmp_path, "shuffle", summary="Shuffle rows.", tags=["split"])
    make(tmp_path, "sampler", summary="Take a random split of rows.")
    make(
        tmp_path,
        "window",
        summary="Rolling windows.",
        inputs=[{"name": "split_column", "type": "str", "description": "Column"}],
    )
    return Catalog.from_sources([Source("team", tmp_path)])


def test_ranking_exact_prefix_name_words_tag_text(catalog):
    hits = catalog.search("split")
    assert names(hits) == [
        "split",  # exact name
        "split_time",  # name prefix
        "stratified_split",  # a word of the name; beta before experimental
        "time_split_exp",
        "shuffle",  # tag
        "sampler",  # summary text; then input names, same tier, by name
        "window",
    ]
    assert [h.tier for h in hits] == [EXACT, PREFIX, NAME_WORDS, NAME_WORDS, TAG, TEXT, TEXT]


def test_every_word_must_match_and_words_match_as_prefixes(catalog):
    # "time split" reads as time_split: a prefix of time_split_exp, only words of split_time.
    assert names(catalog.search("time split")) == ["time_split_exp", "split_time"]
    assert names(catalog.search("stra")) == ["stratified_split"]  # typing a prefix
    assert catalog.search("Split-Time")[0].tier == EXACT  # normalised to split_time
    assert catalog.search("split nothing") == []


def test_stability_tie_break_within_a_tier(tmp_path):
    make(tmp_path, "b_rows", stability="experimental", summary="Rows.")
    make(tmp_path, "c_rows", stability="stable", summary="Rows.")
    make(tmp_path, "a_rows", stability="beta", summary="Rows.")
    make(tmp_path, "d_rows", stability="deprecated", summary="Rows.")
    cat = Catalog.from_sources([Source("s", tmp_path)])
    assert names(cat.search("rows")) == ["c_rows", "a_rows", "b_rows", "d_rows"]
    assert names(cat.search("")) == ["c_rows", "a_rows", "b_rows", "d_rows"]  # browsing


def test_filters(tmp_path):
    make(tmp_path / "a", "load", categories=["data-loading"])
    make(tmp_path / "a", "train", categories=["training"], stability="beta")
    make(tmp_path / "b", "fit", categories=["training"])
    cat = Catalog.from_sources([Source("a", tmp_path / "a"), Source("b", tmp_path / "b")])
    assert names(cat.search(category="training")) == ["fit", "train"]
    assert names(cat.search(stability="beta")) == ["train"]
    assert names(cat.search(source="b")) == ["fit"]
    assert names(cat.search("thing", source="a", category="training")) == ["train"]
    assert cat.search(category="nope") == []


def test_versions_side_by_side_and_references(tmp_path):
    for v, s in [("1.2.0", "stable"), ("1.2.3", "stable"), ("1.3.0", "stable"),
                 ("2.0.0-rc.1", "stable"), ("2.1.0", "beta")]:  # fmt: skip
        make(tmp_path, "clean", v, stability=s)
    cat = Catalog.from_sources([Source("s", tmp_path)])
    assert [str(c.version) for c in cat.versions("clean")] == [
        "2.1.0", "2.0.0-rc.1", "1.3.0", "1.2.3", "1.2.0"]  # fmt: skip
    assert str(cat.resolve("clean").version) == "1.3.0"  # latest stable, not beta or rc
    assert str(cat.resolve("clean@1.2").version) == "1.2.3"
    assert str(cat.resolve("clean@1").version) == "1.3.0"
    assert str(cat.resolve("clean@1.2.0").version) == "1.2.0"
    assert str(cat.resolve("clean@2").version) == "2.1.0"  # a pin may take a beta
    assert str(cat.resolve("clean@2.0.0-rc.1").version) == "2.0.0-rc.1"
    with pytest.raises(LookupError, match=r"'clean@2.0' matches no version .* 2.1.0, 2.0.0-rc.1"):
        cat.resolve("clean@2.0")
    with pytest.raises(LookupError, match="no component named 'dirty'"):
        cat.resolve("dirty")
    with pytest.raises(LookupError, match="is not a reference"):
        cat.resolve("clean@latest")
    # Two versions load side by side, each with its own code.
    assert cat.resolve("clean@1.2.0").load()(0) == "1.2.0"
    assert cat.resolve("clean@1.3").load()(0) == "1.3.0"
    hit = cat.search("clean")[0]
    assert str(hit.component.version) == "1.3.0" and len(hit.versions) == 5


def test_no_stable_version_asks_for_a_pin(tmp_path):
    make(tmp_path, "probe", "0.1.0", stability="experimental")
    cat = Catalog.from_sources([Source("s", tmp_path)])
    with pytest.raises(LookupError, match=r"no stable version; pin one of: 0.1.0 \(e.g. probe@"):
        cat.resolve("probe")
    assert str(cat.search("probe")[0].component.version) == "0.1.0"


def test_invalid_folder_is_reported_and_skipped(tmp_path):
    make(tmp_path, "good", folder="good")
    bad = make(tmp_path, "bad", folder="bad")
    (bad / "component.yaml").write_text(
        (bad / "component.yaml").read_text().replace("stability: stable", "stability: gold")
    )
    (tmp_path / "worse").mkdir()
    (tmp_path / "worse" / "component.yaml").write_text("- just\n- a list\n")
    cat = Catalog.from_sources([Source("s", tmp_path)])
    assert cat.names() == ["good"]
    assert [str(e).split(": ")[1] for e in cat.errors] == ["stability", "(top)"]
    assert str(cat.errors[0]).startswith(f"{bad / 'component.yaml'}: stability: 'gold' is not")


def test_first_source_wins_a_duplicate_version(tmp_path):
    make(tmp_path / "org", "load_csv", "1.0.0", summary="The org's copy.")
    make(tmp_path / "org", "load_csv", "9.0.0", stability="beta", summary="The org's newer one.")
    cat = default_catalog([Source("org", tmp_path / "org")])
    assert cat.resolve("load_csv@1.0.0").source == "builtin"
    assert cat.resolve("load_csv@9").source == "org"
    assert cat.resolve("load_csv").source == "builtin"  # the org's newer one is only beta
    assert len(cat.errors) == 1 and "already provided by source 'builtin'" in str(cat.errors[0])


def test_builtin_catalog_is_clean_and_searchable():
    cat = Catalog.from_sources([BUILTIN])
    assert cat.errors == []
    assert names(cat.search("csv"))[0] == "load_csv"
    assert names(cat.search("drift"))[0] == "detect_drift"
    assert set(names(cat.search("split"))) >= {"time_split", "train_test_split_stratified"}
    assert names(cat.search("confusion"))[0] == "evaluate_classifier"  # a tag


def test_facets_count_names_and_ignore_their_own_filter(tmp_path):
    make(tmp_path / "a", "load", categories=["data-loading"])
    make(tmp_path / "a", "train", "1.0.0", categories=["training"])
    make(tmp_path / "a", "train", "2.0.0", categories=["training"], stability="beta")
    make(tmp_path / "b", "fit", categories=["training", "tuning"], stability="beta")
    cat = Catalog.from_sources([Source("a", tmp_path / "a"), Source("b", tmp_path / "b", "git")])
    f = cat.facets()
    assert f["categories"] == [("training", 2), ("data-loading", 1), ("tuning", 1)]
    assert f["stabilities"] == [("beta", 2), ("stable", 2)]  # train counts once per value
    assert f["sources"] == [("a", 2), ("b", 1)]
    f = cat.facets(category="training", stability="beta")
    assert f["categories"] == [("training", 2), ("tuning", 1)]  # beta only
    assert f["stabilities"] == [("beta", 2), ("stable", 1)]  # training only
    assert cat.facets("nothing-matches") == {"categories": [], "stabilities": [], "sources": []}
    assert cat.source_kind("b") == "git" and cat.counts() == {"a": 3, "b": 1}


def test_problems_name_files_relative_to_their_source(tmp_path):
    root = tmp_path / "org"
    bad = make(root, "bad", folder="bad")
    (bad / "README.md").unlink()
    make(root, "load_csv", "1.0.0", folder="load_csv")  # the built-in has this version
    cat = default_catalog([Source("org", root)])
    assert [(p.source, p.file, p.key) for p in cat.problems()] == [
        ("org", "bad/component.yaml", "doc"),
        ("org", "load_csv/component.yaml", "version"),
    ]
    assert all(str(tmp_path) not in p.message for p in cat.problems())


def test_nothing_outside_a_source_is_read(tmp_path):
    outside = make(tmp_path / "elsewhere", "secret", folder="secret")
    root = tmp_path / "org"
    root.mkdir()
    (root / "linked").symlink_to(outside)  # a folder linking out of the source
    escaping = make(root, "docs_out", folder="docs_out")
    text = (escaping / "component.yaml").read_text() + "doc: ../../elsewhere/secret/README.md\n"
    (escaping / "component.yaml").write_text(text)
    cat = Catalog.from_sources([Source("org", root)])
    assert cat.names() == []
    assert sorted((p.file, p.key) for p in cat.problems()) == [
        ("docs_out/component.yaml", "doc"),
        ("linked/component.yaml", ""),
    ]


def test_exact_references():
    from mlfactory.components.catalog import is_exact_ref

    assert is_exact_ref("a@1.2.3") and is_exact_ref("a@1.2.3-rc.1")
    assert not any(map(is_exact_ref, ["a", "a@1", "a@1.2", "a@x", "@1.2.3"]))


def test_scan_cache_reuses_unchanged_folders_only(tmp_path, monkeypatch):
    import os

    import mlfactory.components.catalog as catalog_module

    make(tmp_path / "org", "keep", folder="keep")
    changing = make(tmp_path / "org", "change", folder="change")
    broken = make(tmp_path / "org", "broken", folder="broken")
    (broken / "README.md").unlink()
    source = Source("org", tmp_path / "org")
    cache = tmp_path / "cache"
    first = Catalog.from_sources([source], cache)
    assert first.names() == ["change", "keep"] and [e.key for e in first.errors] == ["doc"]
    assert (cache / ".scan" / "org.json").is_file()

    loaded: list[str] = []
    real = catalog_module.load_component

    def counting(folder, source="builtin"):
        loaded.append(Path(folder).name)
        return real(folder, source=source)

    monkeypatch.setattr(catalog_module, "load_component", counting)
    again = Catalog.from_sources([source], cache)
    assert loaded == []  # nothing validated again, errors included
    assert [c.ref for c in again] == [c.ref for c in first]
    assert again.resolve("keep") == first.resolve("keep")
    assert [str(e) for e in again.errors] == [str(e) for e in first.errors]

    yaml_file = changing / "component.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("Does a thing.", "Does it better."))
    os.utime(yaml_file, ns=(1, 1))  # a different mtime even on a coarse clock
    (broken / "README.md").write_text("# fixed\n")
    third = Catalog.from_sources([source], cache)
    assert sorted(loaded) == ["broken", "change"]
    assert third.resolve("change").summary == "Does it better."
    assert third.names() == ["broken", "change", "keep"] and third.errors == []


def test_scan_cache_of_other_code_or_root_is_ignored(tmp_path):
    import json

    make(tmp_path / "org", "keep", folder="keep")
    cache = tmp_path / "cache"
    Catalog.from_sources([Source("org", tmp_path / "org")], cache)
    path = cache / ".scan" / "org.json"
    body = json.loads(path.read_text())
    body["entries"]["keep"]["c"]["summary"] = "tampered"
    path.write_text(json.dumps({**body, "key": "older-code"}))
    assert Catalog.from_sources([Source("org", tmp_path / "org")], cache).resolve(
        "keep"
    ).summary == ("Does a thing.")
    path.write_text(json.dumps({**body, "root": "/elsewhere"}))
    assert Catalog.from_sources([Source("org", tmp_path / "org")], cache).resolve(
        "keep"
    ).summary == ("Does a thing.")


def test_a_scan_can_leave_its_cache_for_later(tmp_path):
    from mlfactory.components.catalog import scan

    make(tmp_path / "org", "keep", folder="keep")
    source, cache = Source("org", tmp_path / "org"), tmp_path / "cache"
    unsaved: list = []
    found, _ = scan(source, cache, unsaved)
    assert [c.name for c in found] == ["keep"] and len(unsaved) == 1
    assert not (cache / ".scan" / "org.json").exists()  # the first list does not wait for it
    unsaved[0].save()
    assert (cache / ".scan" / "org.json").is_file()
    assert Catalog.from_sources([source], cache).resolve("keep") == found[0]
