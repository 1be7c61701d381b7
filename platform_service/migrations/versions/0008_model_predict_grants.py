"""model registry: groups granted to call a model (predict), beside those granted to publish

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_predict_grants",
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("group", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["model"], ["registered_models.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model", "group"),
    )


def downgrade() -> None:
    op.drop_table("model_predict_grants")
