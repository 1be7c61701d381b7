"""The platform service: a JupyterHub-managed service that owns the ledger, budgets, alerts
and idle shutdown.

It talks to the hub only through the hub's REST API (``hubapi``), keeps its state in its own
database (``db``, alembic migrations in ``migrations/``), answers the spawner's budget gate,
and stops idle servers through jupyterhub-idle-culler's pass (``culler``). Pure rules live in
``periods``, ``budgets``, ``reconcile``, ``culling``, ``permissions`` and ``charts``; ``app``
wires them up and ``handlers`` holds the one route table.
"""
