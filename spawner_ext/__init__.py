"""Spawning users' servers: the local-process backend (``mlfactory-local``), the slug
function every derived name goes through, and start-up failure diagnosis."""
