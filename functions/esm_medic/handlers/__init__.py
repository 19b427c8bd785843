"""Thin Lambda entry points: ``esm_medic.handlers.<name>.handler(event, context)``.

Each module parses and validates its event, calls the logic in the package and returns a small JSON result;
shared Powertools setup lives in :mod:`esm_medic.handlers._common`. Workflow handlers: start, classify,
diagnose, decide, remediate, verify, rollback, record. Infra creates one Lambda per module from one asset.
"""

#: the workflow handler modules (the state machine's Task states and the EventBridge ``start`` target)
WORKFLOW_HANDLERS = ("start", "classify", "diagnose", "decide", "remediate", "verify", "rollback", "record")
