"""The store on both backends: migrations, readiness, time zones, constraints."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from launchbay.control_plane import ControlPlane
from launchbay.store.db import make_engine, make_sessionmaker
from launchbay.store.migrate import is_current, upgrade
from launchbay.store.models import Base, Organization, Project, new_id


def test_migrations_create_every_table_and_are_idempotent(empty_database_url):
    engine = make_engine(empty_database_url)
    assert not is_current(engine)
    upgrade(engine)
    upgrade(engine)
    assert is_current(engine)
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    engine.dispose()


def test_head_constant_matches_the_migrations(tmp_path):
    from alembic.script import ScriptDirectory

    from launchbay.store.migrate import HEAD, alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert ScriptDirectory.from_config(alembic_config(engine)).get_heads() == [HEAD]


def test_ready_is_503_until_migrated(settings, empty_database_url):
    from fastapi.testclient import TestClient

    from launchbay.http.app import create_app

    cp = ControlPlane(settings.model_copy(update={"database_url": empty_database_url}),
                      migrate=False)
    client = TestClient(create_app(control_plane=cp))
    pending = client.get("/ready")
    assert pending.status_code == 503 and pending.json()["migrations"] == "pending"
    assert client.get("/health").status_code == 200
    upgrade(cp.engine)
    assert client.get("/ready").status_code == 200
    cp.close()


def test_ready_is_503_when_the_database_is_unreachable(tmp_path):
    from fastapi.testclient import TestClient

    from launchbay.http.app import create_app
    from launchbay.settings import Settings

    settings = Settings(data_dir=tmp_path, database_url=(
        "postgresql+psycopg://nobody:x@127.0.0.1:1/none?connect_timeout=1"))
    client = TestClient(create_app(control_plane=ControlPlane(settings, migrate=False)))
    response = client.get("/ready")
    assert response.status_code == 503 and "unreachable" in response.json()["database"]


def test_timestamps_round_trip_as_utc(cp):
    when = datetime(2030, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    with cp.sessions() as db:
        db.add(Organization(id="org_t", name="t", slug="t", created_at=when, updated_at=when))
        db.commit()
    with cp.sessions() as db:
        stored = db.get_one(Organization, "org_t").created_at
    assert stored == when and stored.tzinfo == timezone.utc and stored.hour == 5


def test_unique_slug_per_organization_is_enforced_by_the_store(cp):
    with cp.sessions() as db:
        db.add(Organization(id="org_a", name="a", slug="a"))
        db.add(Project(id=new_id("prj"), organization_id="org_a", name="x", slug="x"))
        db.commit()
        db.add(Project(id=new_id("prj"), organization_id="org_a", name="X", slug="x"))
        with pytest.raises(IntegrityError):
            db.commit()


def test_deleting_an_organization_cascades(cp):
    with cp.sessions() as db:
        db.add(Organization(id="org_c", name="c", slug="c"))
        db.add(Project(id="prj_c", organization_id="org_c", name="x", slug="x"))
        db.commit()
        db.delete(db.get_one(Organization, "org_c"))
        db.commit()
        assert db.scalar(select(Project).where(Project.id == "prj_c")) is None


def test_sqlite_runs_in_wal_mode(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    make_sessionmaker(engine)
    engine.dispose()


def test_upgrading_a_database_with_rows_keeps_them(empty_database_url):
    """Every migration applies on top of data, not only on an empty database."""
    engine = make_engine(empty_database_url)
    upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO servers (id, name, host, port, provider_key, target_kind, "
            "lifecycle_status, created_at) VALUES ('srv_old', 'local', 'h', 0, 'local-docker', "
            "'single-server', 'active', '2026-01-01 00:00:00')")
    upgrade(engine)
    with engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT edge_proxy_kind, edge_proxy_status FROM servers WHERE id = 'srv_old'").one()
    assert tuple(row) == ("caddy", "pending")
    engine.dispose()


OLD_INSTALL = [
    "INSERT INTO users (id, email, display_name, email_verified, claims, created_at, "
    "updated_at) VALUES ('usr_1', 'a@example.com', 'a', false, '{}', "
    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    "INSERT INTO organizations (id, name, slug, created_at, updated_at) VALUES "
    "('org_1', 'A', 'a', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    "INSERT INTO projects (id, organization_id, name, slug, lifecycle_status, created_at) "
    "VALUES ('prj_1', 'org_1', 'p', 'p', 'active', '2026-01-01 00:00:00')",
    "INSERT INTO environments (id, project_id, organization_id, name, kind, "
    "lifecycle_status, created_at) VALUES ('env_1', 'prj_1', 'org_1', 'e', 'production', "
    "'active', '2026-01-01 00:00:00')",
    "INSERT INTO servers (id, name, host, port, provider_key, target_kind, "
    "lifecycle_status, created_at) VALUES ('srv_1', 'local', 'h', 0, 'local-docker', "
    "'single-server', 'active', '2026-01-01 00:00:00')",
]


def _old_resource(conn, **profiles: dict) -> None:
    """A resource as an older version stored it, with the profiles given (JSON)."""
    for row in OLD_INSTALL:
        conn.exec_driver_sql(row)
    columns = {"source": None, "runtime_profile": {}, "network_profile": {},
               "health_policy": None, "access_profile": {}, **profiles}
    conn.execute(text(
        "INSERT INTO resources (id, organization_id, project_id, environment_id, server_id, "
        "name, slug, kind, lifecycle_status, source, runtime_profile, network_profile, "
        "health_policy, access_profile, created_at) VALUES ('res_1', 'org_1', 'prj_1', "
        "'env_1', 'srv_1', 'web', 'web', 'application', 'active', :source, :runtime_profile, "
        ":network_profile, :health_policy, :access_profile, '2026-01-01 00:00:00')"),
        {k: json.dumps(v) if v is not None else None for k, v in columns.items()})


def _column(engine, name: str) -> dict:
    with engine.connect() as conn:
        value = conn.exec_driver_sql(f"SELECT {name} FROM resources").scalar_one()
    return json.loads(value) if isinstance(value, str) else value


def test_0011_claims_the_first_admin_and_turns_archive_paths_into_upload_ids(
        empty_database_url, tmp_path):
    """An install from before the security migration: its first admin has claimed the
    bootstrap, and an archive source that named a file (a template's, here) names an upload of
    its own resource."""
    engine = make_engine(empty_database_url)
    upgrade(engine, "0010")
    digest = "ab" * 20
    shared = tmp_path / "sources" / "templates" / f"{digest}.tar.gz"
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"archive")
    with engine.begin() as conn:
        _old_resource(conn, source={"kind": "archive", "locator": str(shared)})
    upgrade(engine)
    with engine.connect() as conn:
        claim = conn.exec_driver_sql("SELECT step, user_id FROM bootstrap").one()
    assert _column(engine, "source")["locator"] == digest
    assert (tmp_path / "sources" / "res_1" / f"{digest}.tar.gz").read_bytes() == b"archive"
    assert tuple(claim) == ("first-admin", "usr_1")
    engine.dispose()


def test_0012_writes_every_profile_in_camel_case_but_the_users_own_keys(empty_database_url):
    engine = make_engine(empty_database_url)
    upgrade(engine, "0011")
    with engine.begin() as conn:
        _old_resource(
            conn, source={"kind": "git", "locator": "https://example.com/r.git",
                          "git_ref": "main", "metadata": {"my_key": "v"}},
            health_policy={"interval_seconds": 7, "http": {"expected_status_code": 204}},
            access_profile={"generated_access_mode": "disabled", "path_prefix": "/shop"})
    upgrade(engine)
    assert _column(engine, "source") == {"kind": "git", "locator": "https://example.com/r.git",
                                         "gitRef": "main", "metadata": {"my_key": "v"}}
    assert _column(engine, "health_policy") == {"intervalSeconds": 7,
                                                "http": {"expectedStatusCode": 204}}
    assert _column(engine, "access_profile") == {"generatedAccessMode": "disabled",
                                                 "pathPrefix": "/shop"}
    engine.dispose()


def test_0014_marks_the_features_own_projects_as_theirs(empty_database_url):
    engine = make_engine(empty_database_url)
    upgrade(engine, "0013")
    with engine.begin() as conn:
        for row in OLD_INSTALL[:3]:
            conn.exec_driver_sql(row)
        for n, slug in enumerate(("services", "ephemeral", "hosted-team", "hosted-ab12")):
            conn.exec_driver_sql(
                "INSERT INTO projects (id, organization_id, name, slug, lifecycle_status, "
                f"created_at) VALUES ('prj_f{n}', 'org_1', '{slug}', '{slug}', 'active', "
                "'2026-01-01 00:00:00')")
    upgrade(engine)
    with engine.connect() as conn:
        kinds = dict(conn.exec_driver_sql("SELECT slug, kind FROM projects").all())
    assert kinds == {"p": "user", "services": "dployr", "ephemeral": "dploy",
                     "hosted-team": "shipyard", "hosted-ab12": "shipyard"}
    engine.dispose()


def test_0019_and_0020_keep_databases_their_backups_and_copies(empty_database_url):
    """Both alter tables other rows refer to (SQLite copies such a table): nothing that refers
    to them is lost or refused."""
    engine = make_engine(empty_database_url)
    upgrade(engine, "0018")
    at = "'2026-01-01 00:00:00'"
    with engine.begin() as conn:
        for row in OLD_INSTALL:
            conn.exec_driver_sql(row)
        conn.exec_driver_sql(
            "INSERT INTO databases (id, organization_id, project_id, environment_id, server_id, "
            "name, slug, kind, source_mode, host, port, username, sealed_secret, status, "
            f"created_at) VALUES ('db_1', 'org_1', 'prj_1', 'env_1', 'srv_1', 'main', 'main', "
            f"'postgres', 'managed', 'db-1', 5432, 'app', 'sealed', 'ready', {at})")
        conn.exec_driver_sql(
            "INSERT INTO database_backups (id, organization_id, database_id, kind, reason, "
            f"status, destination_ids, created_at) VALUES ('dbk_1', 'org_1', 'db_1', "
            f"'postgres', 'manual', 'ready', '[]', {at})")
        conn.exec_driver_sql(
            "INSERT INTO backup_destinations (id, organization_id, name, kind, endpoint, "
            "bucket, prefix, sealed_credentials, created_at) VALUES ('dst_1', 'org_1', 's3', "
            f"'s3', 'https://s3.example.com', 'b', '', 'sealed', {at})")
        conn.exec_driver_sql(
            "INSERT INTO database_backup_copies (backup_id, destination_id, object_key, status) "
            "VALUES ('dbk_1', 'dst_1', 'k', 'uploaded')")
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT login, secret_version FROM databases").one() == (
            None, 1)
        assert conn.exec_driver_sql(
            "SELECT database_id, storage_volume_id FROM database_backups").one() == ("db_1", None)
        assert conn.exec_driver_sql("SELECT count(*) FROM database_backup_copies").scalar() == 1
        if engine.dialect.name == "sqlite":  # and references are enforced again afterwards
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
