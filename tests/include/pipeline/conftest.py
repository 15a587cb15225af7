from __future__ import annotations

import pytest

from tests.include.pipeline.appdb import create_app_db


@pytest.fixture(params=["postgres", "sqlite"])
def app_db(request, tmp_path):
    """An empty demo-schema app database, on real PostgreSQL (own schema) and on SQLite."""
    db = create_app_db(request.param, tmp_path)
    yield db
    db.drop()


@pytest.fixture
def sqlite_app_db(tmp_path):
    db = create_app_db("sqlite", tmp_path)
    yield db
    db.drop()


@pytest.fixture
def postgres_app_db(tmp_path):
    db = create_app_db("postgres", tmp_path)
    yield db
    db.drop()
