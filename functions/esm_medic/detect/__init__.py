"""Detection: notice when a Kafka ESM breaks or recovers, because AWS emits no event for it.

- :mod:`esm_medic.detect.sweeper`: the scheduled sweep (list every ESM, compare with the DynamoDB snapshot, emit
  ``ESM Status Change`` events on transitions, exactly once, with flap suppression).
- :mod:`esm_medic.detect.snapshot`: the per-ESM snapshot records in the STATE table (conditional writes).
- :mod:`esm_medic.detect.events`: build / validate / parse the ``ESM Status Change`` event; parse CloudTrail records
  (ESM create/update, access denials by an execution role) and CloudWatch alarm events; the EventBridge patterns.
- :mod:`esm_medic.detect.watch`: re-check one ESM until it settles (after a create/update or an alarm).

Everything here reaches AWS only through :class:`esm_medic.aws.Aws`.
"""
