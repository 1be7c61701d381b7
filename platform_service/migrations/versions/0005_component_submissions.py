"""component registry: users' submissions and the shared namespace

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "component_submissions",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("submitted_at", sa.Float(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("reviewer", sa.String(length=255), nullable=True),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.Column("reviewed_at", sa.Float(), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner", "name", "version", name="uq_component_submission"),
    )
    with op.batch_alter_table("component_submissions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_component_submissions_owner"), ["owner"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_component_submissions_status"), ["status"], unique=False
        )
    op.create_table(
        "published_components",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("submission_id", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=False),
        sa.Column("published_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    with op.batch_alter_table("published_components", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_published_components_published_at"), ["published_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("published_components", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_published_components_published_at"))
    op.drop_table("published_components")
    with op.batch_alter_table("component_submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_component_submissions_status"))
        batch_op.drop_index(batch_op.f("ix_component_submissions_owner"))
    op.drop_table("component_submissions")
