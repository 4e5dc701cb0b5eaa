"""The source of truth: SQLAlchemy models, migrations and the unit of work.

SQLite (one file, the embedded default) and PostgreSQL (several replicas) run the same
code; ``tests/store`` is the contract suite both pass.
"""
