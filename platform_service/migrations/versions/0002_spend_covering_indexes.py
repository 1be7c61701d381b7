"""covering indexes for the budget gate's spend queries

The gate sums a scope's sessions in its period (``Store.spend``). With only the single-column
indexes, every matching session costs a table lookup, and a group's sum two (the group row
for ``session_id``, then the session). These indexes hold what the sums read, so SQLite and
PostgreSQL answer from the index alone (benchmarks/budgets.py, README "Budgets").

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SESSION_COLUMNS = ["started", "ended", "price_per_hour"]


def upgrade() -> None:
    with op.batch_alter_table("ledger_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_user_spend", ["user", *SESSION_COLUMNS], unique=False)
        batch_op.create_index(
            "ix_ledger_project_spend", ["project", *SESSION_COLUMNS], unique=False
        )
    with op.batch_alter_table("ledger_session_groups", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_group_sessions", ["group", "session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ledger_session_groups", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_group_sessions")
    with op.batch_alter_table("ledger_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_project_spend")
        batch_op.drop_index("ix_ledger_user_spend")
