"""The ledger: every attempt with its tokens and exact cost, in SQLite or PostgreSQL."""

from switchyard.ledger.db import Database, connect
from switchyard.ledger.store import AttemptRecord, BreakerRow, Ledger, from_ms, to_ms

__all__ = ["AttemptRecord", "BreakerRow", "Database", "Ledger", "connect", "from_ms", "to_ms"]
