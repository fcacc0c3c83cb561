"""What happened, kept for later: the recognizer's ledger and the audit log.

Two ports (:class:`~facelens.history.ledger.RecognitionLedger`,
:class:`~facelens.history.audit.AuditLog`), each written once over SQL
(:mod:`~facelens.history.sql_ledger`, :mod:`~facelens.history.sql_audit`) against
a small dialect (:mod:`~facelens.history.sql_dialect`): SQLite's (files in the
host's home, the one-command default) and PostgreSQL's (tables in the database
that holds the collections, so that several recognizer hosts share one
history, one set of strangers' sightings and one idempotency record).
:mod:`facelens.history.registry` picks the adapter from the collections URL.
"""
