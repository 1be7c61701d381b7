"""The diff worker process: ``python -m mlfactory.server.history.worker`` answers diffs
on stdin/stdout (see ``diffing.serve``) until stdin closes."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # stdout carries the replies: anything a library prints goes to stderr instead
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    from mlfactory.server.history.diffing import serve

    serve(sys.stdin.buffer, replies)
