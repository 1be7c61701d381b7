"""Cell ids before nbdime, and the worker process: results, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import json

import nbformat
import pytest
from mlfactory.server.history import diffing


def _notebook(sources: list[str], ids: bool) -> bytes:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    if not ids:
        nb.nbformat_minor = 4
        for cell in nb.cells:
            del cell["id"]
    return nbformat.writes(nb).encode()


def test_add_ids_is_stable_and_unique():
    a = {"cells": [{"cell_type": "code", "source": "x"}, {"cell_type": "code", "source": "x"}]}
    b = {"cells": [{"cell_type": "code", "source": "x"}, {"cell_type": "markdown", "source": "x"}]}
    assert len(diffing.add_ids(a)) == 2 and len(diffing.add_ids(b)) == 2
    assert a["cells"][0]["id"] == b["cells"][0]["id"]
    assert len({c["id"] for c in a["cells"]}) == 2
    kept = {"cells": [{"cell_type": "code", "source": "y", "id": "mine"}]}
    assert diffing.add_ids(kept) == set() and kept["cells"][0]["id"] == "mine"


def test_id_less_diff_matches_nbdime_without_invented_ids():
    from nbdime.diffing.notebooks import diff_notebooks

    old = _notebook(["a = 1", "b = 2", "c = 3"], ids=False)
    new = _notebook(["a = 1", "b = 20", "c = 3", "d = 4"], ids=False)
    base, diff = diffing.diff_documents(old, new)
    plain = json.loads(json.dumps(diff_notebooks(diffing.load(old), diffing.load(new))))
    assert json.loads(diff) == plain
    assert '"id"' not in diff.decode() and '"id"' not in base.decode()
    assert [c["source"] for c in json.loads(base)["cells"]] == ["a = 1", "b = 2", "c = 3"]


def test_drop_id_changes():
    diff = [
        {"op": "patch", "key": "cells", "diff": [
            {"op": "patch", "key": 0, "diff": [{"op": "replace", "key": "id", "value": "x"}]},
            {"op": "patch", "key": 1, "diff": [
                {"op": "replace", "key": "id", "value": "y"},
                {"op": "patch", "key": "source", "diff": []},
            ]},
        ]},
        {"op": "patch", "key": "metadata", "diff": []},
    ]  # fmt: skip
    out = diffing.drop_id_changes(diff, {"x", "y"})
    assert out[0]["diff"] == [{"op": "patch", "key": 1, "diff": [diff[0]["diff"][1]["diff"][1]]}]
    assert out[1] == diff[1]


async def test_worker_diffs_and_is_reused(diff_workers):
    old = _notebook(["a"], ids=True)
    new = _notebook(["b"], ids=True)
    _, first = await diffing.diff_in_worker(old, new, limit_s=60)
    (_, proc) = diff_workers.idle[-1]
    _, second = await diffing.diff_in_worker(old, new, limit_s=60)
    assert first == second and json.loads(first)[0]["key"] == "cells"
    assert diff_workers.idle[-1][1] is proc


async def test_worker_reports_bad_input(diff_workers):
    with pytest.raises(diffing.DiffFailed, match="JSONDecodeError"):
        await diffing.diff_in_worker(b"not json", b"{}", limit_s=60)
    # the worker survives a bad request
    await diffing.diff_in_worker(_notebook(["a"], True), _notebook(["a"], True), limit_s=60)


async def test_timeout_kills_the_worker(diff_workers):
    await diff_workers.warm_up()
    (_, proc) = diff_workers.idle[-1]
    big = _notebook([f"x = {i}" for i in range(3000)], ids=False)
    other = _notebook([f"x = {i + 1}" for i in range(3000)], ids=False)
    with pytest.raises(diffing.DiffTimeout):
        await diffing.diff_in_worker(big, other, limit_s=0.05, ids=False)
    assert await asyncio.wait_for(proc.wait(), 10) is not None
    assert all(p is not proc for _, p in diff_workers.idle)


async def test_cancellation_kills_the_worker(diff_workers):
    await diff_workers.warm_up()
    (_, proc) = diff_workers.idle[-1]
    big = _notebook([f"x = {i}" for i in range(3000)], ids=False)
    other = _notebook([f"x = {i + 1}" for i in range(3000)], ids=False)
    task = asyncio.ensure_future(diffing.diff_in_worker(big, other, limit_s=600, ids=False))
    await asyncio.sleep(0)  # let it send the request
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.wait_for(proc.wait(), 10) is not None


def _fast_config():
    from nbdime.diffing.config import DiffConfig
    from nbdime.diffing.notebooks import notebook_config

    differs = notebook_config.differs.copy()
    differs["/cells"] = diffing.diff_cells
    return DiffConfig(
        predicates=notebook_config.predicates,
        differs=differs,
        atomic_paths=notebook_config._atomic_paths,
    )


def _edited(seed: int, ids: bool, moves: bool = False) -> tuple[bytes, bytes]:
    import random

    rng = random.Random(seed)
    sources = [f"x_{i} = {i}\nprint(x_{i})" for i in range(60)]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    before = nbformat.writes(nb)
    for _ in range(6):
        k = rng.randrange(len(nb.cells))
        action = rng.choice(["edit", "insert", "delete"] + (["move"] if moves else []))
        if action == "edit":
            nb.cells[k].source += "\nx = 0"
        elif action == "insert":
            nb.cells.insert(k, nbformat.v4.new_markdown_cell(f"note {k}"))
        elif action == "delete":
            del nb.cells[k]
        else:
            nb.cells.insert(rng.randrange(len(nb.cells)), nb.cells.pop(k))
    after = nbformat.writes(nb)
    if not ids:
        before, after = (
            nbformat.writes(nbformat.reads(_notebook_no_ids(t), as_version=4))
            for t in (before, after)
        )
    return before.encode(), after.encode()


def _notebook_no_ids(text: str) -> str:
    import json as _json

    data = _json.loads(text)
    data["nbformat_minor"] = 4
    for cell in data["cells"]:
        cell.pop("id", None)
    return _json.dumps(data)


@pytest.mark.parametrize("seed", range(12))
def test_fast_cell_alignment_gives_nbdime_s_diff(seed):
    from nbdime.diffing.generic import diff
    from nbdime.diffing.notebooks import diff_notebooks

    for ids in (True, False):
        old, new = _edited(seed, ids)
        a, b = diffing.load(old), diffing.load(new)
        diffing.add_ids(a), diffing.add_ids(b)
        expected = json.loads(json.dumps(diff_notebooks(a, b)))
        assert json.loads(json.dumps(diff(a, b, path="", config=_fast_config()))) == expected


@pytest.mark.parametrize("seed", range(12))
def test_fast_cell_alignment_with_moves_is_a_correct_diff(seed):
    """Moved cells can make two alignments equally long; either is a correct diff."""
    from nbdime import patch
    from nbdime.diffing.generic import diff

    for ids in (True, False):
        old, new = _edited(seed, ids, moves=True)
        a, b = diffing.load(old), diffing.load(new)
        diffing.add_ids(a), diffing.add_ids(b)
        assert patch(a, diff(a, b, path="", config=_fast_config())) == b


@pytest.mark.parametrize(
    "value",
    ["", "a" * 63, "QUJD" * 20, "QUJD" * 19 + "QQ==", "QUJD" * 19 + "QQ=", "QUJD\n" * 20,
     "QUJD" * 19 + "Q!==", "ü" * 80, "QUJD" * 19 + "QUJ=", "QUJD" * 18 + "====", "QUJD" * 19 + "Q"],
)  # fmt: skip
def test_fast_base64_check_agrees_with_nbdime(value):
    from nbdime.diffing.notebooks import _is_base64

    assert diffing._is_base64(value) == bool(_is_base64(value))


def frontend_lines(text: str) -> list[str]:
    """What nbdime's frontend makes of a cell's text: ``text.match(/^.*(\\r\\n|\\r|\\n|$)/gm)``
    run the way JavaScript runs it (``.`` and ``$`` stop at \\n, \\r, U+2028 and U+2029)."""
    ends = "\n\r\u2028\u2029"
    lines, pos = [], 0
    while pos <= len(text):
        if pos and text[pos - 1] not in ends:
            pos += 1  # "^" fails here: the next match starts further on
            continue
        end = pos
        while end < len(text) and text[end] not in ends:
            end += 1
        if text.startswith("\r\n", end):
            end += 2
        elif end < len(text) and text[end] in "\r\n":
            end += 1
        lines.append(text[pos:end])
        pos = end if end > pos else pos + 1
    return lines


def test_frontend_lines_mirror_nbdime():
    assert frontend_lines("a\nb") == ["a\n", "b"]
    assert frontend_lines("a\r\nb\rc\n") == ["a\r\n", "b\r", "c\n", ""]
    assert frontend_lines("a\x0cb\x85c") == ["a\x0cb\x85c"]
    assert frontend_lines("a\u2028b") == ["a", "b"]  # nbdime's splitLines loses U+2028


def _apply(seq: list | str, ops: list) -> list:
    """nbdime's sequence ops applied in order, refusing keys out of range as its frontend
    does ("Invalid patch diff op: Key out of range")."""
    out, pos = [], 0
    for e in ops:
        key = e["key"]
        limit = len(seq) - (1 if e["op"] == "patch" else 0) - e.get("length", 0)
        assert pos <= key <= limit, f"key {key} out of range for {len(seq)} items"
        out += list(seq[pos:key])
        pos = key
        if e["op"] == "addrange":
            out += list(e["valuelist"])
        elif e["op"] == "removerange":
            pos += e["length"]
        else:
            out.append("".join(_apply(seq[key], e["diff"])))
            pos += 1
    return out + list(seq[pos:])


def as_frontend_draws(base: str, diff: list) -> str:
    """The new text nbdime's frontend builds: the source diff applied to its lines."""
    return "".join(_apply(frontend_lines(base), diff))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # a form feed (a page break in Python files): Python's splitlines ends a line there
        ("a = 1\x0c\nb = 2\nc = 3\nd = 4", "a = 1\x0c\nb = 2\nc = 30\nd = 4\ne = 5"),
        # drawn as "c = 3new = 9" in the browser before, with no error at all
        ("a = 1\x0c\nb = 2\nc = 3", "a = 1\x0c\nb = 2\nnew = 9\nc = 3"),
        ("\n".join(f"x{i} = {i}\x0c" for i in range(14)), "x = 0\x0c\n" + "y = 1\x0b\n"),
        ("s = 'a\x85b\x1cc'\nt = 1\nu = 2", "s = 'a\x85b\x1cc'\nt = 2"),
        ("a\r\nb\rc\nd", "a\r\nb\rc\nd\ne"),
        ("s = 'pasted\u2028from a PDF'\nt = 1\nu = 2", "s = 'pasted\u2028from a PDF'\nt = 3"),
    ],
    ids=[
        "form-feed",
        "insert-after-form-feed",
        "many-separators",
        "nel-and-fs",
        "cr-lf",
        "line-separator",
    ],  # fmt: skip
)
async def test_the_diff_counts_lines_as_the_browser_does(diff_workers, old, new):
    """Every line number in a source diff is a line of the text the browser shows: the
    diff applied to the browser's lines of the base gives the new text (with Python's
    line splitting, a form feed moved every change one line on, past the end)."""

    def notebook(source: str) -> bytes:
        cells = [nbformat.v4.new_code_cell("x", id="first"), nbformat.v4.new_code_cell(source)]
        cells[1]["id"] = "second"
        return nbformat.writes(nbformat.v4.new_notebook(cells=cells)).encode()

    base, diff = await diffing.diff_in_worker(notebook(old), notebook(new), limit_s=60)
    base_source = json.loads(base)["cells"][1]["source"]
    cells = json.loads(diff)[0]["diff"]
    (source,) = [e for e in cells[0]["diff"] if e["key"] == "source"]
    assert cells[0]["key"] == 1 and base_source == diffing.frontend_text(old)
    assert as_frontend_draws(base_source, source["diff"]) == diffing.frontend_text(new)
    assert "\u2028" not in base_source
