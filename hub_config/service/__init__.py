"""The platform service: a JupyterHub-managed service that owns the ledger, budgets and alerts.

It talks to the hub only through the hub's REST API (``hubapi``), keeps its state in its own
database (``db``, alembic migrations in ``migrations/``), and answers the spawner's budget
gate. Pure rules live in ``periods``, ``budgets`` and ``reconcile``; ``app`` wires them up.
"""
