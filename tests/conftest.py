"""Shared test setup: the jupyter-server fixtures (jp_fetch & co) for server-extension tests."""

pytest_plugins = ["pytest_jupyter.jupyter_server"]
