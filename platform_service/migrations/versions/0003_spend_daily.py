"""daily spend per scope, and service metadata

The gate and the month's reports sum these (at most a month of rows per scope) instead of
re-reading every session of the period (benchmarks/budgets.py measured 100-700 ms per gate
on a million sessions without them). The service fills the table from the ledger at its
next start.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spend_daily",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", "day"),
    )
    with op.batch_alter_table("spend_daily", schema=None) as batch_op:
        batch_op.create_index("ix_spend_daily_kind_day", ["kind", "day"], unique=False)
    op.create_table(
        "service_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("service_meta")
    with op.batch_alter_table("spend_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_spend_daily_kind_day")
    op.drop_table("spend_daily")
