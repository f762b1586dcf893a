"""The `/_sim/` controls (contract section 6), answered only to loopback clients.

POST   /_sim/reset                  forget everything; body {"config": {...}} applies config after
GET    /_sim/state                  patients, orders, plans, events, blobs, tokens and "effects"
GET    /_sim/requests               the log of contract requests (personal fields redacted)
GET    /_sim/faults                 the faults in force, with how often each fired
POST   /_sim/faults                 add a fault (see faults.py)
DELETE /_sim/faults                 clear them
GET    /_sim/config                 the configuration
POST   /_sim/config                 change it
POST   /_sim/cases/{caseId}/emit    {"type": ..., "data": {...overrides}}: one event, now
POST   /_sim/cases/{caseId}/adopt   a case the app already has, at its stage (see adopt.py)
POST   /_sim/tokens/revoke          every token issued so far answers 401 AUTH.TOKEN_INVALID
POST   /_sim/tokens/expire          every token issued so far answers 401 AUTH.TOKEN_EXPIRED
"""

import ipaddress
import time

from . import adopt as adoption
from .config import ConfigError
from .faults import FaultSpecError
from .wire import ApiError, as_case_id


def require_loopback(req):
    try:
        loopback = ipaddress.ip_address(req.client_ip.split("%")[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not req.client_ip.startswith("::ffff:127."):
        raise ApiError(403, "SIM.LOOPBACK_ONLY", "the simulator's controls answer loopback clients only")


def reset(sim, req):
    config = req.params.get("config") or {}
    sim.reset()
    return {"reset": True, "config": apply_config(sim, config)}


def state(sim, req):
    snapshot = sim.store.snapshot()
    snapshot["idempotency_keys"] = sim.idempotency.count()
    snapshot["faults"] = sim.faults.to_json()
    pool = sim.outbox.pool
    snapshot["delivery"] = {"in_flight": pool.in_flight, "most_in_flight": pool.most_in_flight, "queued": pool.queued()}
    return snapshot


def request_log(sim, req):
    with sim.store.lock:
        return [dict(entry) for entry in sim.store.request_log]


def list_faults(sim, req):
    return sim.faults.to_json()


def add_fault(sim, req):
    try:
        fault = sim.faults.add(req.params, default_seed=sim.config.seed)
    except FaultSpecError as exc:
        raise ApiError(400, "REQUEST.INVALID_FIELD", str(exc)) from None
    return fault.to_json()


def clear_faults(sim, req):
    sim.faults.clear()
    return {"faults": []}


def show_config(sim, req):
    return sim.config.snapshot()


def change_config(sim, req):
    return apply_config(sim, req.params)


def apply_config(sim, values):
    if not isinstance(values, dict):
        raise ApiError(400, "REQUEST.INVALID_FIELD", "config must be an object")
    try:
        snapshot = sim.config.update(values)
    except ConfigError as exc:
        raise ApiError(400, "REQUEST.INVALID_FIELD", str(exc)) from None
    if "seed" in values:
        sim.progress.reseed()
        sim.outbox.reseed()
    return snapshot


def emit(sim, req):
    case_id = as_case_id(req.path_args["caseId"])
    record = sim.progress.emit(case_id, req.params.get("type"), req.params.get("data") or {})
    return {"event_id": record["event_id"], "state": record["state"], "body": record["body"]}


def adopt(sim, req):
    return adoption.adopt(sim, req.path_args["caseId"], req.params)


def revoke_tokens(sim, req):
    with sim.store.lock:
        tokens = [t for t in sim.store.tokens.values() if not t.revoked]
        for token in tokens:
            token.revoked = True
    return {"revoked": len(tokens)}


def expire_tokens(sim, req):
    now = time.time()
    with sim.store.lock:
        tokens = [t for t in sim.store.tokens.values() if t.expires_at > now and not t.revoked]
        for token in tokens:
            token.expires_at = now
    return {"expired": len(tokens)}
