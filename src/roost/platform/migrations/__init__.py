"""Alembic migrations of the platform schema, shipped inside the package.

They live here (not in a repository-level ``alembic/`` folder) so that
``roost db upgrade`` works from an installed wheel. Run them through
:mod:`roost.platform.storage.migrate` or the ``roost db`` command; to write a
new revision during development::

    .venv/bin/python -m roost.platform.storage.migrate revision -m "add x" \\
        --database-url sqlite:////tmp/dev.sqlite3

Each revision's ``down_revision`` must be the previous head, so the history
stays linear (the webhook tables' revision follows the initial core revision).
"""
