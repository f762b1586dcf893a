"""A simulator of the Align integration service, speaking the contract in
docs/align-contract.md (the README's "The Align simulator" shows how to use it).

A real threaded HTTP server with its state in memory: tokens, patients, orders, asset
uploads (asking the app for the case's asset list), ClinCheck accept and modify, read
back, the vault blob API, Idempotency-Key replay, signed events with retries, and the
loopback-only `/_sim/` controls (reset, state, request log, faults, config, emit,
adopt, token revocation and expiry).

    python manage.py run_align_simulator --port 8765 --app-url http://127.0.0.1:8000
    python -m align_simulator --port 8765      # the same, without Django

Modules: `server` (HTTP, routing, faults, idempotency), `routes` (the contract's calls),
`blobs` (the vault), `progress` (Align's own work as events), `outbox` (signed delivery
with retries), `controls` (/_sim/), `store` (state behind one lock), `config`, `faults`,
`idempotency`, `previews`, `scheduler`, `wire`.
"""

from .server import AlignSimulator, serve

__all__ = ["AlignSimulator", "serve"]
