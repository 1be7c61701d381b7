"""This host's NVIDIA GPUs: detection via nvidia-smi, matching a profile's GPU type, and
handing out whole devices so that no device ever serves two servers at once.

Only ``detect_gpus`` does I/O; parsing, matching and allocation are pure.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

QUERY_ARGS = (
    "--query-gpu=index,uuid,name,memory.total",
    "--format=csv,noheader,nounits",
)

# Marketing words that say nothing about which GPU it is: "NVIDIA Tesla T4" is a "t4".
_NOISE_WORDS = frozenset({"nvidia", "tesla"})


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_mib: int


class NoGpuAvailable(Exception):
    """No GPUs can be handed out for a request; ``message`` is meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """GPUs from ``nvidia-smi --query-gpu=index,uuid,name,memory.total
    --format=csv,noheader,nounits`` output; raises ValueError naming a malformed line."""
    gpus = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        # index and uuid come first and memory last, so a comma inside a name survives.
        if len(parts) >= 4:
            index, uuid, name, memory = parts[0], parts[1], ", ".join(parts[2:-1]), parts[-1]
            if index.isdigit() and memory.isdigit() and uuid and name:
                gpus.append(Gpu(int(index), uuid, name, int(memory)))
                continue
        raise ValueError(
            f"nvidia-smi output line {lineno} is not 'index, uuid, name, memory.total': {raw!r}"
        )
    return gpus


async def detect_gpus(
    command: str = "nvidia-smi",
    timeout: float = 10,  # noqa: ASYNC109 - the child is killed on timeout; a caller's could not
    *,
    logger: logging.Logger | None = None,
) -> list[Gpu]:
    """This host's GPUs, or [] when nvidia-smi is missing, fails or hangs (the reason is
    logged at info/warning). Output that does not parse raises ValueError: that is a bug
    or an unknown nvidia-smi, not a host without GPUs."""
    logger = logger or log
    try:
        proc = await asyncio.create_subprocess_exec(
            command,
            *QUERY_ARGS,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as e:  # not installed, or not executable
        logger.info("No GPUs: cannot run %s (%s)", command, e.strerror or e)
        return []
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        logger.warning("No GPUs: %s did not answer within %ss", command, timeout)
        return []
    if proc.returncode != 0:
        logger.warning(
            "No GPUs: %s exited with %s: %s",
            command,
            proc.returncode,
            stderr.decode(errors="replace").strip() or stdout.decode(errors="replace").strip(),
        )
        return []
    return parse_nvidia_smi(stdout.decode(errors="replace"))


def _type_words(s: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", s.lower()) if w and w not in _NOISE_WORDS]


def normalise_gpu_type(s: str) -> str:
    """Lowercase alphanumerics without the words "nvidia" and "tesla":
    "nvidia-tesla-t4" and "Tesla T4" → "t4"; "NVIDIA A100-SXM4-40GB" → "a100sxm440gb"."""
    return "".join(_type_words(s))


def gpu_type_matches(wanted: str, gpu_name: str) -> bool:
    """Whether a GPU called ``gpu_name`` is of type ``wanted``: the normalised type occurs
    in the normalised name, starting where a word of the name starts.

    Containment alone would match "a10" to an A100 and "l4" to an L40S, so a match may not
    end between two digits unless a word of the name ends there ("h100" does match
    "NVIDIA H100 80GB HBM3").
    """
    want = normalise_gpu_type(wanted)
    if not want:
        return False
    words = _type_words(gpu_name)
    name = "".join(words)
    boundaries, pos = {0}, 0
    for w in words:
        pos += len(w)
        boundaries.add(pos)
    start = name.find(want)
    while start != -1:
        end = start + len(want)
        splits_number = end < len(name) and name[end - 1].isdigit() and name[end].isdigit()
        if start in boundaries and (end in boundaries or not splits_number):
            return True
        start = name.find(want, start + 1)
    return False


def cuda_env(uuids: Iterable[str]) -> dict[str, str]:
    """Environment that shows a server exactly these GPUs; with none, CUDA sees no device
    (an unset CUDA_VISIBLE_DEVICES would show it every GPU on the host)."""
    visible = ",".join(uuids)
    return {"CUDA_VISIBLE_DEVICES": visible, "NVIDIA_VISIBLE_DEVICES": visible}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class GpuAllocator:
    """Hands out whole GPUs to servers (by key), each device to at most one key.

    Synchronous on purpose: the hub runs every spawner on one event loop, so a call can't
    interleave with another and no lock is needed.
    """

    def __init__(self, gpus: Sequence[Gpu]) -> None:
        self.gpus: tuple[Gpu, ...] = tuple(sorted(gpus, key=lambda g: g.index))
        self._by_uuid = {g.uuid: g for g in self.gpus}
        self._held: dict[str, tuple[str, ...]] = {}
        self._owner: dict[str, str] = {}  # uuid -> key

    def allocate(self, key: str, count: int, gpu_type: str | None = None) -> tuple[str, ...]:
        """``count`` distinct free GPUs (of ``gpu_type`` when given) for ``key``, lowest
        index first. Asking again for the same count returns what ``key`` already holds.
        Raises NoGpuAvailable with a message for the user."""
        if count < 0:
            raise ValueError(f"GPU count must be >= 0, not {count}")
        held = self._held.get(key)
        if held is not None:
            same_type = gpu_type is None or all(
                gpu_type_matches(gpu_type, self._by_uuid[u].name) for u in held
            )
            if len(held) == count and same_type:
                return held
            raise ValueError(
                f"{key} already holds {_plural(len(held), 'GPU')}; release them before "
                f"asking for {count}" + (f" of type {gpu_type}" if gpu_type else "")
            )
        if count == 0:
            return ()
        kind = f" of type {normalise_gpu_type(gpu_type)}" if gpu_type else ""
        fitting = [g for g in self.gpus if gpu_type is None or gpu_type_matches(gpu_type, g.name)]
        free = [g for g in fitting if g.uuid not in self._owner]
        if not fitting:
            if not self.gpus:
                raise NoGpuAvailable("This machine has no GPUs; pick a CPU profile")
            present = ", ".join(sorted({g.name for g in self.gpus}))
            raise NoGpuAvailable(
                f"This machine has no GPU{kind} (it has: {present}); pick another profile"
            )
        if len(fitting) < count:
            raise NoGpuAvailable(
                f"This server needs {_plural(count, 'GPU')}{kind} but this machine has only "
                f"{len(fitting)}; pick a profile with fewer GPUs"
            )
        if len(free) < count:
            if not free:
                what = (
                    f"The only GPU{kind} is"
                    if len(fitting) == 1
                    else f"All {len(fitting)} GPUs{kind} are"
                )
                raise NoGpuAvailable(
                    f"{what} in use by other servers; try again later or pick a CPU profile"
                )
            raise NoGpuAvailable(
                f"Only {len(free)} of {_plural(len(fitting), 'GPU')}{kind} "
                f"{'is' if len(free) == 1 else 'are'} free and this server needs {count}; "
                "try again later or pick a profile with fewer GPUs"
            )
        chosen = tuple(g.uuid for g in free[:count])
        self._hold(key, chosen)
        return chosen

    def release(self, key: str) -> tuple[str, ...]:
        """Give back what ``key`` holds (nothing if it holds nothing); returns those uuids."""
        held = self._held.pop(key, ())
        for uuid in held:
            self._owner.pop(uuid, None)
        return held

    def restore(self, key: str, uuids: Iterable[str]) -> tuple[str, ...]:
        """Re-register ``key``'s GPUs from saved state (after a hub restart), replacing what
        it holds. Returns the uuids dropped: not on this host, or held by another key."""
        self.release(key)
        kept: list[str] = []
        dropped: list[str] = []
        for uuid in uuids:
            if uuid in self._by_uuid and uuid not in self._owner and uuid not in kept:
                kept.append(uuid)
            else:
                dropped.append(uuid)
        if kept:
            self._hold(key, tuple(kept))
        return tuple(dropped)

    def in_use(self) -> dict[str, tuple[str, ...]]:
        """Every key holding GPUs, with their uuids."""
        return dict(self._held)

    def _hold(self, key: str, uuids: tuple[str, ...]) -> None:
        self._held[key] = uuids
        for uuid in uuids:
            self._owner[uuid] = key
