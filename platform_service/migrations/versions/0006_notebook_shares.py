"""notebook shares: shares, their snapshot versions, recipients and the sharing audit

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notebook_shares",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("message", sa.String(length=2000), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notebook_shares_owner", "notebook_shares", ["owner"])
    op.create_table(
        "notebook_share_versions",
        sa.Column("share_id", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["share_id"], ["notebook_shares.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("share_id", "version"),
    )
    op.create_table(
        "notebook_share_recipients",
        sa.Column("share_id", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["share_id"], ["notebook_shares.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("share_id", "kind", "name"),
    )
    op.create_index(
        "ix_share_recipients_lookup", "notebook_share_recipients", ["kind", "name", "share_id"]
    )
    op.create_table(
        "notebook_share_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("share_id", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notebook_share_events_share_id", "notebook_share_events", ["share_id"])
    op.create_index("ix_notebook_share_events_actor", "notebook_share_events", ["actor"])
    op.create_index("ix_notebook_share_events_at", "notebook_share_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_notebook_share_events_at", table_name="notebook_share_events")
    op.drop_index("ix_notebook_share_events_actor", table_name="notebook_share_events")
    op.drop_index("ix_notebook_share_events_share_id", table_name="notebook_share_events")
    op.drop_table("notebook_share_events")
    op.drop_index("ix_share_recipients_lookup", table_name="notebook_share_recipients")
    op.drop_table("notebook_share_recipients")
    op.drop_table("notebook_share_versions")
    op.drop_index("ix_notebook_shares_owner", table_name="notebook_shares")
    op.drop_table("notebook_shares")
