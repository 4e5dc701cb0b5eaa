"""Management operations (SPEC §2): one module per resource, each authorized by the engine.

Every operation takes the acting :class:`~orgauthz.services.context.Actor`, checks it with
:meth:`Management.require`, writes through :meth:`Management.write` (one transaction, one
revision, one audit event at least) and returns the committed revision.
"""
