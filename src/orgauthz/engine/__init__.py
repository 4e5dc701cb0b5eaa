"""The decision path: Casbin's model evaluated per organization, composed with caches and metrics."""
