"""HTTP surface: thin routers that parse, call a service and serialise."""
