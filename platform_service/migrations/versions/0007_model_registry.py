"""model registry: registered models, group grants, published versions and alias moves

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_registered_models_owner", "registered_models", ["owner"])
    op.create_table(
        "model_grants",
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("group", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["model"], ["registered_models.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model", "group"),
    )
    op.create_table(
        "model_versions",
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_by", sa.String(length=255), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=False),
        sa.Column("notebook_path", sa.String(length=1024), nullable=True),
        sa.Column("history_version", sa.String(length=64), nullable=True),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("framework", sa.String(length=128), nullable=False),
        sa.Column("mlfactory_version", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("serving", sa.Boolean(), nullable=False),
        sa.Column("serving_changed_by", sa.String(length=255), nullable=True),
        sa.Column("serving_changed_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["model"], ["registered_models.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model", "version"),
    )
    op.create_table(
        "model_alias_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous", sa.Integer(), nullable=True),
        sa.Column("moved_by", sa.String(length=255), nullable=False),
        sa.Column("moved_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["model"], ["registered_models.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_model_alias_moves_model", "model_alias_moves", ["model"])


def downgrade() -> None:
    op.drop_index("ix_model_alias_moves_model", table_name="model_alias_moves")
    op.drop_table("model_alias_moves")
    op.drop_table("model_versions")
    op.drop_table("model_grants")
    op.drop_index("ix_registered_models_owner", table_name="registered_models")
    op.drop_table("registered_models")
