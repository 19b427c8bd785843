"""Detection: notice when a Kafka ESM breaks or recovers, because AWS emits no event for it.

- :mod:`esm_medic.detect.sweeper`: the scheduled sweep (list every ESM, compare with the DynamoDB snapshot, emit
  ``ESM Status Change`` events on transitions, exactly once); :mod:`.decide` is its pure decision (what a status
  means, the flap hold, ``suspected`` events), :mod:`.settings` its knobs, :mod:`.passes` the extra passes inside
  one invocation while the fleet is small.
- :mod:`esm_medic.detect.esm_logs`: the log path, ESM system-log records from a CloudWatch Logs subscription turned
  into the same events (de-duplicated with the snapshots) and poller evidence.
- :mod:`esm_medic.detect.snapshot`: the per-ESM snapshot and evidence records in the STATE table.
- :mod:`esm_medic.detect.events`: the events in and out, one module per kind, and the EventBridge patterns.
- :mod:`esm_medic.detect.watch`: re-check one ESM until it settles (after a create/update or an alarm).

Everything here reaches AWS only through :class:`esm_medic.aws.Aws`.
"""
