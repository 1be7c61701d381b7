"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, one request each in
flight, fixed body. Prints one JSON line: requests, req/s, p50/p99 latency, errors.

Runs in its own process so it never shares a GIL with the server under test. Standard
library only, so any of the benchmark's virtual environments can run it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


async def worker(host, port, request, stop_at, warm_until, lat, errors):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            t0 = time.perf_counter_ns()
            if t0 >= stop_at:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            t1 = time.perf_counter_ns()
            if status != 200:
                errors.append((status, body[:200].decode("utf-8", "replace")))
            elif t0 >= warm_until:
                lat.append(t1 - t0)
    finally:
        writer.close()


async def main_async(args, body: bytes) -> dict:
    headers = [
        f"POST {args.path} HTTP/1.1",
        f"Host: {args.host}:{args.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive",
    ] + list(args.header or [])
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    lat: list[int] = []
    errors: list = []
    start = time.perf_counter_ns()
    warm_until = start + int(args.warmup * 1e9)
    stop_at = warm_until + int(args.duration * 1e9)
    await asyncio.gather(
        *(
            worker(args.host, args.port, request, stop_at, warm_until, lat, errors)
            for _ in range(args.concurrency)
        )
    )
    lat.sort()
    n = len(lat)
    return {
        "concurrency": args.concurrency,
        "requests": n,
        "rps": n / args.duration,
        "p50_ms": lat[n // 2] / 1e6 if n else None,
        "p99_ms": lat[min(n - 1, int(n * 0.99))] / 1e6 if n else None,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--body-file", required=True)
    p.add_argument("--header", action="append")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    args = p.parse_args()
    with open(args.body_file, "rb") as f:
        body = f.read()
    print(json.dumps(asyncio.run(main_async(args, body))))


if __name__ == "__main__":
    main()
