"""Migrations, driven from code: `launchbay db upgrade` and start-up both call `upgrade`.

Alembic is imported only when the database is behind: a plain query of `alembic_version`
against `HEAD` tells whether there is anything to do, which keeps start-up light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, text

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions; a test checks it against Alembic's own view.
HEAD = "0030"


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration this code knows."""
    return current_revision(engine) == HEAD


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and is_current(engine):
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)
