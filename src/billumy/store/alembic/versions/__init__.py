"""The SQL schema's revisions, oldest first (see :mod:`billumy.store.schema`)."""
