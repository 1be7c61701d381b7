"""the running sessions in their own table, kept by triggers

``ledger_open`` lists the sessions whose ``ended`` is NULL; triggers on ``ledger_sessions``
add a session when it is inserted running and remove it when it ends, whoever writes the
row (the service, an operator's SQL). It replaces the index ``ix_ledger_open (ended, user)``:
on PostgreSQL that index kept an entry for every version of every session ended since the
last VACUUM, and every gate visited the heap page behind each of them (see
``db.LedgerOpen``).

SQLite: a later migration that rebuilds ``ledger_sessions`` (``batch_alter_table`` with
``recreate``) drops these triggers with the old table and must create them again.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PG_TRIGGERS = """
CREATE FUNCTION ledger_open_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.ended IS NULL THEN
    INSERT INTO ledger_open (session_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
  ELSE
    DELETE FROM ledger_open WHERE session_id = NEW.id;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER ledger_open_on_insert AFTER INSERT ON ledger_sessions
  FOR EACH ROW WHEN (NEW.ended IS NULL) EXECUTE FUNCTION ledger_open_track();
CREATE TRIGGER ledger_open_on_end AFTER UPDATE OF ended ON ledger_sessions
  FOR EACH ROW WHEN ((OLD.ended IS NULL) <> (NEW.ended IS NULL))
  EXECUTE FUNCTION ledger_open_track();
"""
SQLITE_TRIGGERS = (
    """CREATE TRIGGER ledger_open_on_insert AFTER INSERT ON ledger_sessions
  WHEN NEW.ended IS NULL
  BEGIN INSERT OR IGNORE INTO ledger_open (session_id) VALUES (NEW.id); END""",
    """CREATE TRIGGER ledger_open_on_end AFTER UPDATE OF ended ON ledger_sessions
  WHEN OLD.ended IS NULL AND NEW.ended IS NOT NULL
  BEGIN DELETE FROM ledger_open WHERE session_id = NEW.id; END""",
    """CREATE TRIGGER ledger_open_on_reopen AFTER UPDATE OF ended ON ledger_sessions
  WHEN OLD.ended IS NOT NULL AND NEW.ended IS NULL
  BEGIN INSERT OR IGNORE INTO ledger_open (session_id) VALUES (NEW.id); END""",
)


def upgrade() -> None:
    op.create_table(
        "ledger_open",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["ledger_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("session_id"),
    )
    op.execute(
        "INSERT INTO ledger_open (session_id) SELECT id FROM ledger_sessions WHERE ended IS NULL"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_TRIGGERS)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.drop_index("ix_ledger_open", table_name="ledger_sessions")


def downgrade() -> None:
    op.create_index("ix_ledger_open", "ledger_sessions", ["ended", "user"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ledger_open_on_end ON ledger_sessions")
        op.execute("DROP TRIGGER ledger_open_on_insert ON ledger_sessions")
        op.execute("DROP FUNCTION ledger_open_track()")
    else:
        for name in ("ledger_open_on_reopen", "ledger_open_on_end", "ledger_open_on_insert"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("ledger_open")
