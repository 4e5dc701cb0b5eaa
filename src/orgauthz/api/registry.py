"""Management servicers register here; :class:`~orgauthz.api.server.App` calls each one.

A registrar is ``fn(app, server, management)``; one line per module below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Registrar = Callable[[Any, Any, Any], None]

REGISTRARS: list[Registrar] = []
SERVICE_NAMES: list[str] = []


def register(*service_names: str) -> Callable[[Registrar], Registrar]:
    def deco(fn: Registrar) -> Registrar:
        REGISTRARS.append(fn)
        SERVICE_NAMES.extend(service_names)
        return fn

    return deco


def load_all() -> None:
    """Imports every management servicer module so its registrar runs."""
    import importlib
    import pkgutil

    import orgauthz.api as api

    for mod in pkgutil.iter_modules(api.__path__):
        if mod.name.startswith("mgmt_"):
            importlib.import_module(f"orgauthz.api.{mod.name}")
