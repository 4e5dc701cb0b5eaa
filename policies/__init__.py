"""The policy files, installed as the package ``orgauthz.policies`` (pyproject.toml maps it here).

No code: this file only makes the directory a package, so that a wheel carries model.conf,
scopes.yaml, roles.yaml and tests/ and an editable install finds them here.
"""
