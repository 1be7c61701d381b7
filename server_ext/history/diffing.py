"""Notebook-aware diffs with nbdime, in a killable worker process with a timeout.

nbdime aligns cells by id first and is 10–100× faster when they have one, so cells
without an id get one derived from their type and source (the same cell gets the same
id in both versions); the id changes that this invents are dropped from the diff.
Lines are split where nbdime's frontend and CodeMirror split them, so the line numbers of
a diff are the lines the browser shows. Diffs run in worker processes that have nbdime
imported; a timeout or a client that went away kills the worker, and nbdime's module-level
options stay private to them.
"""

from __future__ import annotations

import asyncio
import binascii
import bisect
import contextlib
import hashlib
import json
import os
import re
import signal
import struct
import sys
import weakref
from typing import Any, BinaryIO


class DiffTimeout(TimeoutError):
    pass


class DiffFailed(RuntimeError):
    pass


def add_ids(nb: dict[str, Any]) -> set[str]:
    """Give every cell without an id one derived from its type and source, and return the
    ids added. Ids stay unique within the notebook (valid nbformat 4.5 ids)."""
    seen = {c["id"] for c in nb.get("cells", []) if isinstance(c.get("id"), str)}
    added: set[str] = set()
    for cell in nb.get("cells", []):
        if isinstance(cell.get("id"), str) and cell["id"]:
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        digest = hashlib.sha1(  # noqa: S324 - an alignment key, not security
            f"{cell.get('cell_type')}\0{source}".encode()
        ).hexdigest()
        candidate, n = digest[:12], 1
        while candidate in seen:
            candidate, n = f"{digest[:12]}-{n}", n + 1
        cell["id"] = candidate
        seen.add(candidate)
        added.add(candidate)
    return added


def drop_id_changes(diff: list[dict[str, Any]], invented: set[str]) -> list[dict[str, Any]]:
    """The diff without the ids that ``add_ids`` invented: no id replacements, and added
    cells as they are in the file."""
    out = []
    for entry in diff:
        if entry.get("op") == "patch" and entry.get("key") == "cells":
            cells = []
            for cell in entry["diff"]:
                if cell.get("op") == "patch":
                    inner = [e for e in cell["diff"] if e.get("key") != "id"]
                    if not inner:
                        continue
                    cell = {**cell, "diff": inner}
                elif cell.get("op") == "addrange":
                    cell = {
                        **cell,
                        "valuelist": [_without_id(c, invented) for c in cell["valuelist"]],
                    }
                cells.append(cell)
            if not cells:
                continue
            entry = {**entry, "diff": cells}
        out.append(entry)
    return out


def _lis_snakes(a_ids: list[str], b_ids: list[str]) -> list[tuple[int, int, int]]:
    """nbdime's snakes ``(i, j, n)`` of the longest common subsequence of two lists of
    unique ids: a longest increasing subsequence, O(n log n) instead of nbdime's grid."""
    where = {cell_id: j for j, cell_id in enumerate(b_ids)}
    pairs = [(i, where[x]) for i, x in enumerate(a_ids) if x in where]
    tails: list[int] = []
    tail_at: list[int] = []
    previous = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        p = bisect.bisect_left(tails, j)
        if p == len(tails):
            tails.append(j)
            tail_at.append(k)
        else:
            tails[p] = j
            tail_at[p] = k
        previous[k] = tail_at[p - 1] if p > 0 else -1
    chain = []
    k = tail_at[-1] if tail_at else -1
    while k >= 0:
        chain.append(pairs[k])
        k = previous[k]
    snakes: list[tuple[int, int, int]] = []
    for i, j in reversed(chain):
        if snakes and snakes[-1][0] + snakes[-1][2] == i and snakes[-1][1] + snakes[-1][2] == j:
            snakes[-1] = (snakes[-1][0], snakes[-1][1], snakes[-1][2] + 1)
        else:
            snakes.append((i, j, 1))
    return snakes


def diff_cells(a: list[Any], b: list[Any], path: str = "/cells", config: Any = None) -> Any:
    """nbdime's diff of the cell lists, aligning by id in O(n log n).

    nbdime's multilevel alignment compares every pair of cells by id (a full grid) before
    refining the gaps with its other predicates; this finds the same id alignment as a
    longest increasing subsequence, then refines the gaps and builds the diff with
    nbdime's own functions. Cells without unique ids fall back to nbdime unchanged.
    """
    from nbdime.diffing.generic import diff_sequence_multilevel
    from nbdime.diffing.snakes import compute_diff_from_snakes, compute_snakes_multilevel

    a_ids = [c.get("id") for c in a]
    b_ids = [c.get("id") for c in b]
    if (
        None in a_ids
        or None in b_ids
        or len(set(a_ids)) != len(a_ids)
        or len(set(b_ids)) != len(b_ids)
    ):
        return diff_sequence_multilevel(a, b, path=path, config=config)
    compares = config.predicates[path]
    snakes: list[tuple[int, int, int]] = [(0, 0, 0)]
    i0, j0 = 0, 0
    for i, j, n in [*_lis_snakes(a_ids, b_ids), (len(a), len(b), 0)]:
        if i > i0 and j > j0:
            rect = (i0, j0, i, j)
            snakes += compute_snakes_multilevel(a, b, compares, rect, len(compares) - 2)
        if n > 0:
            li, lj, ln = snakes[-1]
            if li + ln == i and lj + ln == j:
                snakes[-1] = (li, lj, ln + n)
            else:
                snakes.append((i, j, n))
        i0, j0 = i + n, j + n
    if snakes[0][2] == 0:
        snakes.pop(0)
    return compute_diff_from_snakes(a, b, snakes, path=path, config=config)


_B64_LINE_BREAKS = str.maketrans("", "", "\r\n")


def _is_base64(test_string: str, min_len: int = 64) -> bool:
    """nbdime's ``_is_base64`` answer at C speed (nbdime runs a grouped regex over each
    image on every comparison: ~10 ms per 150 kB PNG)."""
    if len(test_string) < min_len:
        return False
    text = test_string.translate(_B64_LINE_BREAKS)
    if len(text) % 4 or text.endswith("==="):
        return False
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return True


# nbdime's frontend (its splitLines, then CodeMirror) ends a line only at \r\n, \r or \n.
# Python's str.splitlines, which nbdime's diff uses, also ends one at \v, \f, \x1c-\x1e,
# \x85, U+2028 and U+2029: one form feed in a cell and every line number after it pointed
# one line further in the browser ("Invalid line number 15 in 14-line document", "Key out
# of range"), and the diff stopped drawing at that cell.
_FRONTEND_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
# nbdime's splitLines drops U+2028 and U+2029 (a JavaScript "." stops there and the
# character is matched by nothing), so their texts are shown with line breaks instead.
_DROPPED_BY_FRONTEND = str.maketrans({"\u2028": "\n", "\u2029": "\n"})
_DROPPED_MARKS = (b"\xe2\x80\xa8", b"\xe2\x80\xa9", b"\\u2028", b"\\u2029")


def split_lines(text: str) -> list[str]:
    """``text`` in lines, each with its line end, where the browser breaks lines (pure)."""
    return _FRONTEND_LINE.findall(text)


def diff_lines(a: str, b: str) -> Any:
    """nbdime's line-wise string diff over ``split_lines`` instead of ``str.splitlines``."""
    import operator
    from collections import defaultdict

    from nbdime.diffing.config import DiffConfig
    from nbdime.diffing.generic import compare_strings_approximate, diff_lists
    from nbdime.diffing.sequences import diff_strings_by_char

    if a == b:
        return []
    config = DiffConfig(
        predicates=defaultdict(lambda: [compare_strings_approximate, operator.__eq__]),
        differs=defaultdict(lambda: diff_strings_by_char),
    )
    return diff_lists(split_lines(a), split_lines(b), config=config)


def frontend_text(value: Any) -> Any:
    """``value`` (a notebook, recursively) with U+2028 and U+2029 as line breaks."""
    if isinstance(value, str):
        return value.translate(_DROPPED_BY_FRONTEND)
    if isinstance(value, list):
        return [frontend_text(v) for v in value]
    if isinstance(value, dict):
        return type(value)((k, frontend_text(v)) for k, v in value.items())
    return value


def install_fast_paths() -> None:
    """In the worker process only (nbdime's configuration is module-level state): align
    cells by id in O(n log n), recognise base64 images without a regex, and diff strings
    in the browser's lines."""
    from nbdime.diffing import generic, notebooks

    notebooks.notebook_config.differs["/cells"] = diff_cells
    notebooks._is_base64 = _is_base64
    # both of nbdime's string differs (``diff`` and ``diff_string_lines``) look it up here
    generic.diff_strings_linewise = diff_lines


def _without_id(cell: dict[str, Any], invented: set[str]) -> dict[str, Any]:
    if cell.get("id") in invented:
        return {k: v for k, v in cell.items() if k != "id"}
    return cell


def load(raw: bytes) -> Any:
    """A notebook file as nbdime wants it (v4, sources as strings), without the cost of
    validating several megabytes of outputs."""
    import nbformat
    from nbformat.v4.rwbase import rejoin_lines

    data = json.loads(raw)
    if any(mark in raw for mark in _DROPPED_MARKS):
        data = frontend_text(data)
    if data.get("nbformat") != 4:
        return nbformat.reads(json.dumps(data), as_version=4)
    return rejoin_lines(nbformat.from_dict(data))


def diff_documents(base: bytes, remote: bytes, *, ids: bool = True) -> tuple[bytes, bytes]:
    """``(base notebook JSON, nbdime diff JSON)`` for two notebook files (pure CPU)."""
    from nbdime.diffing.notebooks import diff_notebooks

    a, b = load(base), load(remote)
    invented = (add_ids(a) | add_ids(b)) if ids else set()
    result = diff_notebooks(a, b)
    if invented:
        result = drop_id_changes(json.loads(json.dumps(result)), invented)
        a["cells"] = [_without_id(c, invented) for c in a["cells"]]
    return json.dumps(a).encode(), json.dumps(result).encode()


_REQUEST = struct.Struct("!QQ?")
_REPLY = struct.Struct("!BQQ")
MAX_IDLE_WORKERS = 2
MAX_WORKERS = 2
WORKER_MODULE = "mlfactory.server.history.worker"


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """The worker's loop: read two notebooks, answer the diff, until stdin closes."""
    install_fast_paths()
    while True:
        header = requests.read(_REQUEST.size)
        if len(header) < _REQUEST.size:
            return
        base_len, remote_len, ids = _REQUEST.unpack(header)
        base, remote = requests.read(base_len), requests.read(remote_len)
        try:
            first, second = diff_documents(base, remote, ids=ids)
            status = 0
        except Exception as e:  # reported to the server, which logs it
            first, second, status = f"{type(e).__name__}: {e}".encode(), b"", 1
        replies.write(_REPLY.pack(status, len(first), len(second)) + first + second)
        replies.flush()


class DiffWorkers:
    """Worker processes (``python -m ...history.worker``), reused while they behave and killed
    when a diff runs past its limit or its caller is cancelled."""

    def __init__(self) -> None:
        self.idle: list[tuple[asyncio.AbstractEventLoop, asyncio.subprocess.Process]] = []
        self._warming: asyncio.Future[None] | None = None
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def _take(self) -> asyncio.subprocess.Process:
        loop = asyncio.get_running_loop()
        while self.idle:
            owner, proc = self.idle.pop()
            if owner is loop and proc.returncode is None:
                return proc
            _kill(proc)
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", WORKER_MODULE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def diff(
        self, base: bytes, remote: bytes, *, limit_s: float, ids: bool = True
    ) -> tuple[bytes, bytes]:
        # at most MAX_WORKERS at once (~50 MB each): a burst of requests waits its turn
        loop = asyncio.get_running_loop()
        if loop not in self._slots:
            self._slots[loop] = asyncio.Semaphore(MAX_WORKERS)
        try:
            async with asyncio.timeout(limit_s):
                await self._slots[loop].acquire()
        except TimeoutError:
            raise DiffTimeout from None
        try:
            return await self._diff(base, remote, limit_s=limit_s, ids=ids)
        finally:
            self._slots[loop].release()

    async def _diff(
        self, base: bytes, remote: bytes, *, limit_s: float, ids: bool
    ) -> tuple[bytes, bytes]:
        reusable = False
        proc: asyncio.subprocess.Process | None = None
        # started outside the time limit and shielded: a cancellation while the process is
        # being created must not leave it running without anyone holding its pipes
        starting = asyncio.ensure_future(self._take())
        try:
            proc = await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(_kill_when_started)
            raise
        try:
            async with asyncio.timeout(limit_s):
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(_REQUEST.pack(len(base), len(remote), ids) + base + remote)
                await proc.stdin.drain()
                status, first_len, second_len = _REPLY.unpack(
                    await proc.stdout.readexactly(_REPLY.size)
                )
                first = await proc.stdout.readexactly(first_len)
                second = await proc.stdout.readexactly(second_len)
            reusable = True
        except TimeoutError:
            raise DiffTimeout from None
        except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
            code = proc.returncode if proc is not None else None
            raise DiffFailed(f"the diff worker ended unexpectedly (code {code})") from None
        finally:
            if proc is not None:
                if reusable and len(self.idle) < MAX_IDLE_WORKERS:
                    self.idle.append((asyncio.get_running_loop(), proc))
                else:
                    _kill(proc)
                    with contextlib.suppress(Exception):
                        await proc.wait()
        if status != 0:
            raise DiffFailed(first.decode("utf-8", "replace"))
        return first, second

    async def close(self) -> None:
        """End the idle workers of the running loop (shutdown, tests)."""
        loop = asyncio.get_running_loop()
        keep = []
        for owner, proc in self.idle:
            if owner is loop:
                _kill(proc)
                await proc.wait()
            else:
                keep.append((owner, proc))
        self.idle = keep

    async def warm_up(self) -> None:
        """Start a worker now, so the first diff does not pay for importing nbdime."""
        proc = await self._take()
        self.idle.append((asyncio.get_running_loop(), proc))

    def warm_soon(self) -> None:
        """Start a worker in the background unless one is idle or starting: called when the
        History panel opens, so servers that never diff do not carry a worker (~50 MB)."""
        if self.idle or (self._warming is not None and not self._warming.done()):
            return
        self._warming = asyncio.ensure_future(self.warm_up())


def _kill_when_started(task: asyncio.Future[asyncio.subprocess.Process]) -> None:
    if not task.cancelled() and task.exception() is None:
        _kill(task.result())


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        except RuntimeError:  # its event loop is gone (a previous test's, say)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)


WORKERS = DiffWorkers()


async def diff_in_worker(
    base: bytes, remote: bytes, *, limit_s: float, ids: bool = True
) -> tuple[bytes, bytes]:
    """``diff_documents`` in a worker process; killed on timeout or cancellation."""
    return await WORKERS.diff(base, remote, limit_s=limit_s, ids=ids)
