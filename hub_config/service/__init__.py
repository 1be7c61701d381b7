"""Deprecated: the platform service moved to ``mlfactory.service`` (``platform_service/``).

Kept for one release so that deployments whose service command names
``python -m mlfactory.hub.service`` keep starting; nothing in mlfactory imports it.
"""
