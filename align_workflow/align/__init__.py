"""Align adapters: the client of Align's integration service (token, timeouts, typed
errors, idempotency keys), the vault, event signatures, HTTP sessions and the payloads
of the contract (docs/align-contract.md).

This package imports nothing else of the project (no align_workflow.*, no states/):
the workflow calls it, never the other way round (import-linter checks it).
"""
