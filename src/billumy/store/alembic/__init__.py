"""Alembic environment of the SQL store (see :mod:`billumy.store.schema`)."""
