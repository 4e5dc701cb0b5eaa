"""Decision caches. Keys carry the organization's revision: nothing is ever invalidated,
a change simply makes new keys (SPEC §3)."""
