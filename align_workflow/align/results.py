"""What the Align client's calls return: typed results, never raw dicts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CreatedPatient:
    p_id: str
    mrn: str
    created: bool


@dataclass(frozen=True)
class CreatedOrder:
    case_id: int
    p_id: str
    order_type: str
    status: str


@dataclass(frozen=True)
class AssetUpload:
    case_id: int
    accepted: bool
    asset_count: int


@dataclass(frozen=True)
class ClinCheckResult:
    case_id: int
    status: str
    sales_order_number: str | None


@dataclass(frozen=True)
class CaseView:
    case_id: int
    p_id: str | None
    status: str | None
    orders: list
    sales_orders: list
    plans: list


class MissingField(Exception):
    pass


def field_of(body, *names, default=MissingField):
    for name in names:
        if name in body:
            return body[name]
    if default is MissingField:
        raise MissingField(names[0])
    return default
