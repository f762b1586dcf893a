"""A simulator of the Align integration service, speaking the contract in
shared/design/align-contract.md (reproduced in the README's "The Align simulator").

A real threaded HTTP server with its state in memory: tokens, patients, orders, asset
uploads (asking the app for the case's asset list), ClinCheck accept and modify, read
back, the vault blob API, Idempotency-Key replay, signed events with retries, and the
loopback-only `/_sim/` controls (reset, state, request log, faults, config, emit).

    python manage.py run_align_simulator --port 8765 --app-url http://127.0.0.1:8000
    python -m align_workflow.integration.simulator --port 8765      # the same, without Django

Modules: `server` (HTTP, routing, faults, idempotency), `routes` (the contract's calls),
`blobs` (the vault), `progress` (Align's own work as events), `outbox` (signed delivery
with retries), `controls` (/_sim/), `store` (state behind one lock), `config`, `faults`,
`idempotency`, `previews`, `scheduler`, `wire`.
"""

from .server import AlignSimulator, serve

__all__ = ["AlignSimulator", "serve"]
