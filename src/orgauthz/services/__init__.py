"""Management operations (SPEC §2): one module per resource, each authorized by the engine.

Every operation takes the acting :class:`~orgauthz.services.context.Actor`, checks it with
:meth:`Management.require`, names what its write reads under the write lock and a pure
``decide`` over those rows (the rules of :mod:`orgauthz.domain.rules`), commits through
:meth:`Management.write` (the store's one commit primitive: one transaction, one revision,
one audit event at least) and returns the committed revision.
"""
