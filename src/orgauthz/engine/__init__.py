"""The decision path: Casbin enforcers per organization, composed with caches and metrics."""
