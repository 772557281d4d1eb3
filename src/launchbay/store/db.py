"""Engine and session set-up for SQLite (WAL) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from pydantic_core import from_json
from sqlalchemy import CursorResult, Engine, Executable, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker


def changed(db: Session, statement: Executable) -> int:
    """How many rows an UPDATE or DELETE changed (the test of a conditional update)."""
    return cast(CursorResult[Any], db.execute(statement)).rowcount


def upsert(db: Session, model: type[Any]) -> Any:
    """An INSERT of `model` that can say what to do on a conflict (`on_conflict_do_nothing`,
    `on_conflict_do_update`), in the store's dialect: the atomic "make it unless it exists"
    that needs neither a SAVEPOINT nor a retry."""
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def make_engine(url: str) -> Engine:
    """The store's engine. JSON columns (release plans, snapshots...) are read by pydantic's
    parser, three times as fast as the standard library's: a list of deployments reads a
    plan and a snapshot per row."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               json_deserializer=from_json)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         json_deserializer=from_json)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
