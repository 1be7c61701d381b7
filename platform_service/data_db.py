"""The audit of data credentials: one row per issued credential (who, which store and
server, until when, dropped when and why, what the store counted) and one row per issue,
renewal and drop. Tables on the service's ``Base``; created by migration 0009.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base


class DataCredential(Base):
    __tablename__ = "data_credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal: Mapped[str] = mapped_column(String(128), unique=True)
    store: Mapped[str] = mapped_column(String(63))
    user: Mapped[str] = mapped_column(String(255))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    groups: Mapped[list] = mapped_column(JSON, default=list)
    access: Mapped[str] = mapped_column(String(16))
    ref: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ttl: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    dropped_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    drop_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    queries: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rows_read: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        Index("ix_data_credentials_live", "dropped_at", "store"),
        Index("ix_data_credentials_user", "user", "store", "issued_at"),
    )


class DataCredentialEvent(Base):
    __tablename__ = "data_credential_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    event: Mapped[str] = mapped_column(String(16))  # issue | renew | drop | refuse
    store: Mapped[str] = mapped_column(String(63))
    user: Mapped[str] = mapped_column(String(255))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    principal: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(255), nullable=True)
