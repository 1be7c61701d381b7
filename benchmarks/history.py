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

    .venv/bin/python benchmarks/history.py --repeat 9

(a) also prints min/median/max per variant, the paired/plain ratio of each round (the two
saves run back to back, so they share the machine's load), and the time of
``jupytext.writes`` alone: the text conversion that jupytext's save runs on the event loop.
``--save-only`` runs (a) alone; ``--levers`` adds two ways of overlapping that conversion
with the notebook's write (a thread, a worker process) that the product does not use, timed
in the same rounds, to size them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform as pyplatform
import random
import statistics
import struct
import subprocess
import tempfile
import time
import zlib
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import jupytext
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


def spread(samples: list[float]) -> tuple[float, float, float]:
    """(min, median, max) in ms."""
    return min(samples) * 1000, statistics.median(samples) * 1000, max(samples) * 1000


async def bench_save(root: Path, repeat: int) -> dict[str, object]:
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
    config = await paired.get_config("big.ipynb")

    def text_conversion() -> None:
        # what jupytext's save does on the event loop for the .py file, and nothing else
        jupytext.writes(nbformat.from_dict(model["content"]), fmt="py:percent", config=config)

    times: dict[str, list[float]] = {"plain": [], "paired": [], "jupytext": [], "writes": []}
    for _ in range(repeat + 1):  # the first round warms caches and imports
        for name, cm in (("plain", plain), ("paired", paired), ("jupytext", bare)):
            start = time.perf_counter()
            await cm.save(model, "big.ipynb")
            times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        text_conversion()
        times["writes"].append(time.perf_counter() - start)
    assert (root / "paired" / "big.py").is_file() and not (root / "plain" / "big.py").exists()
    assert (root / "paired" / "big.py").read_text() == (root / "jupytext" / "big.py").read_text()
    timed = {name: samples[1:] for name, samples in times.items()}
    # each round's paired save over the plain save just before it: both saw the same load
    ratios = [p / q for p, q in zip(timed["paired"], timed["plain"], strict=True)]
    plain_ms, paired_ms = median_ms(timed["plain"]), median_ms(timed["paired"])
    return {
        "plain_ms": plain_ms,
        "paired_ms": paired_ms,
        "jupytext_alone_ms": median_ms(timed["jupytext"]),
        "text_conversion_ms": median_ms(timed["writes"]),
        "ratio": paired_ms / plain_ms,
        "round_ratio_min_median_max": [min(ratios), statistics.median(ratios), max(ratios)],
        "spread_ms": {name: spread(samples) for name, samples in timed.items()},
    }


def text_of(content: dict, fmt: str) -> str:
    """jupytext's text for a notebook model's content (module level: a worker process runs it)."""
    return jupytext.writes(nbformat.from_dict(content), fmt=fmt)


async def bench_levers(root: Path, repeat: int) -> dict[str, object]:
    """Not the product: what overlapping the text conversion with the notebook's write would
    give, to decide whether it is worth taking over jupytext's save. Each variant writes the
    .ipynb first and the .py after it, as jupytext does, and must write jupytext's bytes."""
    nb = make_notebook(500, images=0)
    content = json.loads(json.dumps(nb))
    model = {"type": "notebook", "format": "json", "content": content}
    for name in ("levers-plain", "levers-jupytext", "levers"):
        (root / name).mkdir()
    plain = AsyncLargeFileManager(root_dir=str(root / "levers-plain"))
    bare = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(
        root_dir=str(root / "levers-jupytext"), formats="ipynb,py:percent"
    )
    target = AsyncLargeFileManager(root_dir=str(root / "levers"))
    loop = asyncio.get_running_loop()
    processes = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver"))
    threads = ThreadPoolExecutor(1)

    async def overlapped(executor: Executor) -> None:
        text = loop.run_in_executor(executor, text_of, content, "py:percent")
        await target.save(model, "big.ipynb")
        await target.save({"type": "file", "format": "text", "content": await text}, "big.py")

    variants = {
        "plain": lambda: plain.save(model, "big.ipynb"),
        "jupytext": lambda: bare.save(model, "big.ipynb"),
        "thread": lambda: overlapped(threads),
        "process": lambda: overlapped(processes),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(repeat + 1):  # the first round starts the worker and warms imports
            for name, run in variants.items():
                start = time.perf_counter()
                await run()
                times[name].append(time.perf_counter() - start)
    finally:
        processes.shutdown()
        threads.shutdown()
    expected = (root / "levers-jupytext" / "big.py").read_text()
    assert (root / "levers" / "big.py").read_text() == expected, "not jupytext's text"
    timed = {name: samples[1:] for name, samples in times.items()}
    return {
        "spread_ms": {name: spread(samples) for name, samples in timed.items()},
        "ratio_median": {
            name: statistics.median(p / q for p, q in zip(samples, timed["plain"], strict=True))
            for name, samples in timed.items()
        },
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


async def main(repeat: int, save_only: bool = False, with_levers: bool = False) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        save = await bench_save(root, repeat)
        levers = await bench_levers(root, repeat) if with_levers else None
        big = None if save_only else await bench_version_and_diff(root, repeat)
    rows = [
        ("save, 500 cells, plain (AsyncLargeFileManager)", save["plain_ms"], ""),
        ("save, 500 cells, paired py:percent (jupytext CM)", save["paired_ms"],
         f"{save['ratio']:.2f}× plain (target ≤ 2×)"),
        ("  jupytext's manager alone, same pairing", save["jupytext_alone_ms"],
         "without the history's hook and guard"),
        ("  of which jupytext.writes (py:percent text)", save["text_conversion_ms"],
         "CPU on the event loop, inside jupytext's save"),
        *([] if big is None else [
            (f"save version, {big['notebook_mb']:.1f} MB with 40 PNGs", big["save_version_ms"],
             "target ≤ 1000 ms"),
            ("diff vs working, same notebook (end to end)", big["diff_ms"], "target ≤ 1000 ms"),
            ("  nbdime diff_notebooks, cells with ids", big["nbdime_with_ids_ms"], "in-process"),
            ("  nbdime diff_notebooks, id-less cells (anchor)", big["nbdime_without_ids_ms"],
             "in-process"),
        ]),
    ]  # fmt: skip
    print(f"machine: {machine()}")
    print(f"median of {repeat} rounds\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'ms':>9}  note")
    for name, ms, note in rows:
        print(f"{name:<{width}}  {ms:>9.1f}  {note}")
    print("\n(a) min / median / max over the rounds, ms")
    for name, (lo, mid, hi) in save["spread_ms"].items():
        print(f"  {name:<9} {lo:7.1f} {mid:7.1f} {hi:7.1f}")
    lo, mid, hi = save["round_ratio_min_median_max"]
    print(f"  paired / plain, round by round: {lo:.2f}× / {mid:.2f}× / {hi:.2f}×")
    if levers is not None:
        print("\nlevers, not the product (same rounds; ratio = median of round / plain):")
        for name, (lo, mid, hi) in levers["spread_ms"].items():
            ratio = levers["ratio_median"][name]
            print(f"  {name:<9} {lo:7.1f} {mid:7.1f} {hi:7.1f}  {ratio:.2f}×")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print()
    print(json.dumps({"save": save, "levers": levers, "version_and_diff": big}, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per measure")
    parser.add_argument("--save-only", action="store_true", help="only part (a), the paired save")
    parser.add_argument(
        "--levers",
        action="store_true",
        help="also time the text conversion overlapped in a thread and in a worker process",
    )
    args = parser.parse_args()
    asyncio.run(main(args.repeat, args.save_only, args.levers))
