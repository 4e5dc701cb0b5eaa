"""orgauthz: an authorization sidecar for organizations, workspaces and roles.

Decisions come from Casbin (``policies/model.conf``) loaded with the built-in roles of
``policies/`` and the assignments in the store. See README.md and docs/.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
