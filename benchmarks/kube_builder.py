"""The Kubernetes builder with validation (issue 19): pod and claim manifests per second for
10,000 simulated users, each with a profile, GPU count and image the Kubernetes platform
config allows, every manifest validated against the Kubernetes schema.

    .venv/bin/python benchmarks/kube_builder.py [--users 10000] [--version 1.34]

Target: at least 1,000 manifests/s including validation (a manifest = one pod with its claim).
Anchor, in the same run: kubernetes-validate's own ``validate`` (reads and compiles the
schema at every call) on a sample of the same manifests.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlfactory.spawner.journal import new_ledger  # noqa: E402
from mlfactory.spawner.kube_spec import kube_settings, manifests  # noqa: E402

from tests.kubernetes import kube_schema  # noqa: E402
from tests.kubernetes.cases import DIGEST, kube_platform, rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--version", default=kube_schema.SUPPORTED_VERSIONS[-1])
    parser.add_argument("--anchor-sample", type=int, default=100)
    args = parser.parse_args()
    config = kube_platform()
    table = list(rows(config))
    rng = random.Random(19)
    # users with odd names too: slugs and label values are part of the work
    names = [f"user{i}" if i % 3 else f"User.{i}@Example.org" for i in range(args.users)]
    picks = [rng.choice(table) for _ in names]
    ledgers = [
        new_ledger(n, "", ["ml-engineering"], r.request) for n, r in zip(names, picks, strict=True)
    ]

    t0 = time.perf_counter()
    for version in kube_schema.SUPPORTED_VERSIONS:  # compile once, outside the timing
        kube_schema.validate(
            manifests(_settings(config, picks[0], names[0], ledgers[0]), user=names[0])[0], version
        )
    compile_s = time.perf_counter() - t0

    built = []
    t0 = time.perf_counter()
    for name, row, ledger in zip(names, picks, ledgers, strict=True):
        pod, claim = manifests(_settings(config, row, name, ledger), user=name)
        kube_schema.validate(pod, args.version)
        kube_schema.validate(claim, args.version)
        if len(built) < args.anchor_sample:  # keep only the anchor's sample in memory
            built.append((pod, claim))
    elapsed = time.perf_counter() - t0
    rate = args.users / elapsed

    sample = built
    t0 = time.perf_counter()
    for pod, claim in sample:
        kube_schema.validate_upstream(pod, args.version)
        kube_schema.validate_upstream(claim, args.version)
    anchor_rate = len(sample) / (time.perf_counter() - t0)

    profiles = sorted({r.profile for r in picks})
    print(
        f"Kubernetes {args.version}: {args.users} users over {len(table)} request rows "
        f"({', '.join(profiles)})"
    )
    print(f"  schemas compiled once in {compile_s:.1f} s (both versions)")
    print(f"  builder + validation: {rate:,.0f} manifests/s ({elapsed:.2f} s; target >= 1,000/s)")
    print(
        f"  anchor, kubernetes_validate.validate per call: {anchor_rate:,.1f} manifests/s "
        f"({args.anchor_sample} manifests)"
    )
    print("PASS" if rate >= 1000 else "BELOW TARGET")


def _settings(config, row, name, ledger):
    image = f"registry.example.com/{row.request.image_ref.split(':')[0]}@{DIGEST}"
    return kube_settings(
        row.request,
        config,
        user=name,
        team="ml-engineering",
        image=image,
        ledger=ledger,
        instance="0123456789abcdef",
    )


if __name__ == "__main__":
    main()
