"""Notebook history (issue 7): the cost of pairing on save, of "Save version", and of a
diff of a large notebook with images.

In one run, on this machine:

(a) saving a 500-cell notebook through jupytext's real contents manager (paired with a
    py:percent file, our guard and post-save hook installed) against a plain save of the
    same notebook through jupyter_server's AsyncLargeFileManager — target ≤ 2×;
(b) "Save version" of a ~5 MB notebook with PNG outputs (text pair, git add, commit) —
    target ≤ 1 s;
(c) its diff against the working copy (git read, nbdime in the worker process, JSON
    back) — target ≤ 1 s; the anchor is nbdime's ``diff_notebooks`` on the same
    notebooks with id-less cells (nbformat 4.4), and nbdime on cells with ids is shown too.

    .venv/bin/python benchmarks/history.py --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform as pyplatform
import random
import statistics
import struct
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

import nbformat
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class
from mlfactory.server.history import diffing, pairing
from mlfactory.server.history.extension import NotebookHistory
from nbdime.diffing.notebooks import diff_notebooks


def png(width: int, height: int, rng: random.Random) -> bytes:
    """A real PNG of noise (incompressible, like a plot's worth of detail)."""
    raw = b"".join(b"\0" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack("!I", len(data)) + body + struct.pack("!I", zlib.crc32(body))

    header = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )


def make_notebook(cells: int, images: int, seed: int = 7) -> nbformat.NotebookNode:
    rng = random.Random(seed)
    every = max(1, cells // images) if images else cells + 1
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    for i in range(cells):
        if i % 5 == 0:
            nb.cells.append(nbformat.v4.new_markdown_cell(f"## Step {i}\n\nWhy step {i} matters."))
            continue
        source = "\n".join(f"x_{i}_{k} = compute({i}, {k})  # line {k}" for k in range(6))
        cell = nbformat.v4.new_code_cell(source, execution_count=i)
        cell.outputs.append(nbformat.v4.new_output("stream", text=f"result {i}\n" * 3))
        if images and i % every == 1:
            data = base64.b64encode(png(200, 200, rng)).decode()
            cell.outputs.append(
                nbformat.v4.new_output(
                    "display_data", data={"image/png": data, "text/plain": "<Figure>"}
                )
            )
        nb.cells.append(cell)
    return nb


def edit(nb: nbformat.NotebookNode, seed: int = 11) -> nbformat.NotebookNode:
    """A day's work: some sources edited, two plots redrawn, cells added and removed."""
    rng = random.Random(seed)
    new = nbformat.from_dict(json.loads(json.dumps(nb)))
    code = [c for c in new.cells if c.cell_type == "code"]
    for cell in rng.sample(code, 5):
        cell.source += "\nprint('checked')"
    redrawn = [c for c in code if any(o.get("output_type") == "display_data" for o in c.outputs)]
    for cell in redrawn[:2]:
        cell.outputs[-1]["data"]["image/png"] = base64.b64encode(png(200, 200, rng)).decode()
    for k in range(3):
        new.cells.insert(10 + 40 * k, nbformat.v4.new_code_cell(f"added_{k} = True"))
    del new.cells[200]
    del new.cells[300]
    return new


def without_ids(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.nbformat_minor = 4
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def bench_save(root: Path, repeat: int) -> dict[str, float]:
    nb = make_notebook(500, images=0)
    # as JupyterLab sends it: sources as strings
    model = {"type": "notebook", "format": "json", "content": json.loads(json.dumps(nb))}
    for name in ("plain", "paired", "jupytext"):
        (root / name).mkdir()
    plain = AsyncLargeFileManager(root_dir=str(root / "plain"))
    # jupytext alone (its own formats setting, no history hook or guard): our share of (a)
    bare = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(
        root_dir=str(root / "jupytext"), formats="ipynb,py:percent"
    )
    paired = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(
        root_dir=str(root / "paired")
    )
    ws = NotebookHistory(credentials_dir=str(root / "creds")).workspace(
        str(root / "paired"), lambda: paired
    )
    pairing.guard_contents_manager(paired)
    ws.apply_pairing()
    paired.register_post_save_hook(ws.on_save)
    times: dict[str, list[float]] = {"plain": [], "paired": [], "jupytext": []}
    for _ in range(repeat + 1):  # the first round warms caches and imports
        for name, cm in (("plain", plain), ("paired", paired), ("jupytext", bare)):
            start = time.perf_counter()
            await cm.save(model, "big.ipynb")
            times[name].append(time.perf_counter() - start)
    assert (root / "paired" / "big.py").is_file() and not (root / "plain" / "big.py").exists()
    plain_ms, paired_ms = median_ms(times["plain"][1:]), median_ms(times["paired"][1:])
    return {
        "plain_ms": plain_ms,
        "paired_ms": paired_ms,
        "jupytext_alone_ms": median_ms(times["jupytext"][1:]),
        "ratio": paired_ms / plain_ms,
    }


async def bench_version_and_diff(root: Path, repeat: int) -> dict[str, float]:
    work = root / "work"
    work.mkdir()
    ws = NotebookHistory(credentials_dir=str(root / "creds2")).workspace(str(work))
    base_nb = make_notebook(500, images=40)
    changed_nb = edit(base_nb)
    path = work / "report.ipynb"
    await ws.init()
    await diffing.WORKERS.warm_up()
    version_s, diff_s = [], []
    size = 0
    for i in range(repeat):
        # alternate so each round has something to version and to compare
        nbformat.write(base_nb if i % 2 == 0 else changed_nb, path)
        size = path.stat().st_size
        start = time.perf_counter()
        await ws.save_version("report.ipynb", f"round {i}")
        version_s.append(time.perf_counter() - start)
        nbformat.write(changed_nb if i % 2 == 0 else base_nb, path)
        start = time.perf_counter()
        result = await ws.diff("report.ipynb", None, "working")
        diff_s.append(time.perf_counter() - start)
        assert json.loads(result["diff"]), "the diff found nothing"

    with_ids = []
    anchor = []
    base_bytes, changed_bytes = (
        nbformat.writes(base_nb).encode(),
        nbformat.writes(changed_nb).encode(),
    )
    for _ in range(max(1, repeat // 2)):
        a, b = diffing.load(base_bytes), diffing.load(changed_bytes)
        start = time.perf_counter()
        diff_notebooks(a, b)
        with_ids.append(time.perf_counter() - start)
        a, b = without_ids(diffing.load(base_bytes)), without_ids(diffing.load(changed_bytes))
        start = time.perf_counter()
        diff_notebooks(a, b)
        anchor.append(time.perf_counter() - start)
    await diffing.WORKERS.close()
    return {
        "notebook_mb": size / 1e6,
        "save_version_ms": median_ms(version_s),
        "diff_ms": median_ms(diff_s),
        "nbdime_with_ids_ms": median_ms(with_ids),
        "nbdime_without_ids_ms": median_ms(anchor),
    }


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{model}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
        f"{pyplatform.platform()}, Python {pyplatform.python_version()}, {git}"
    )


async def main(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        save = await bench_save(root, repeat)
        big = await bench_version_and_diff(root, repeat)
    rows = [
        ("save, 500 cells, plain (AsyncLargeFileManager)", save["plain_ms"], ""),
        ("save, 500 cells, paired py:percent (jupytext CM)", save["paired_ms"],
         f"{save['ratio']:.2f}× plain (target ≤ 2×)"),
        ("  jupytext's manager alone, same pairing", save["jupytext_alone_ms"],
         "without the history's hook and guard"),
        (f"save version, {big['notebook_mb']:.1f} MB with 40 PNGs", big["save_version_ms"],
         "target ≤ 1000 ms"),
        ("diff vs working, same notebook (end to end)", big["diff_ms"], "target ≤ 1000 ms"),
        ("  nbdime diff_notebooks, cells with ids", big["nbdime_with_ids_ms"], "in-process"),
        ("  nbdime diff_notebooks, id-less cells (anchor)", big["nbdime_without_ids_ms"],
         "in-process"),
    ]  # fmt: skip
    print(f"machine: {machine()}")
    print(f"median of {repeat} rounds\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'ms':>9}  note")
    for name, ms, note in rows:
        print(f"{name:<{width}}  {ms:>9.1f}  {note}")
    print()
    print(json.dumps({"save": save, "version_and_diff": big}, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per measure")
    asyncio.run(main(parser.parse_args().repeat))
