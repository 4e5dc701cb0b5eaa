"""orgauthz: an authorization sidecar for organizations, workspaces and roles.

Decisions follow the Casbin model in ``policies/model.conf``, over the built-in roles of
``policies/`` and the assignments in the store, evaluated by the engine's compiled form of
the model (docs/architecture.md). See README.md and docs/.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
