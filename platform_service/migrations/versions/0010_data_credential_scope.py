"""data credentials: the group roles and prefixes each credential was issued with

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable: rows issued before this revision did not record them (the tick then lets
    # those credentials expire instead of renewing them)
    with op.batch_alter_table("data_credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("roles", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("prefixes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("data_credentials", schema=None) as batch_op:
        batch_op.drop_column("prefixes")
        batch_op.drop_column("roles")
