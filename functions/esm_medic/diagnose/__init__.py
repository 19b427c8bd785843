"""Read-only diagnosis of Kafka event source mappings: find the actual broken thing in the account, with evidence.

Public API::

    from esm_medic.diagnose import diagnose, scan, diagnose_item, Lookups

    d = diagnose(aws, uuid)                 # -> esm_medic.models.Diagnosis (JSON: d.to_dict())
    lookups = Lookups(aws)                  # per-scan memoised reads; lookups.stats() has the API call counts
    ds = scan(aws, lookups=lookups, progress=lambda done, total: ...)

A healthy ESM gets root cause ``healthy`` with fix ``""`` (nothing to fix); an unrecognised status with no failing
check gets root cause ``unknown`` with fix ``ticket``.
"""

from esm_medic.diagnose.engine import (
    DiagnoseError,
    EsmNotFound,
    NotKafkaEsm,
    diagnose,
    diagnose_item,
    plan,
    prefetch,
    scan,
)
from esm_medic.diagnose.lookups import Fetched, Lookups, Resolver, system_resolver

__all__ = [
    "DiagnoseError",
    "EsmNotFound",
    "Fetched",
    "Lookups",
    "NotKafkaEsm",
    "Resolver",
    "diagnose",
    "diagnose_item",
    "plan",
    "prefetch",
    "scan",
    "system_resolver",
]
