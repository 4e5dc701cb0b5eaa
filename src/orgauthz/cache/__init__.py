"""Decision caches, in process and in Redis, keyed by the organization's revision.

Nothing is ever invalidated: a change simply makes new keys (SPEC §3).
"""
