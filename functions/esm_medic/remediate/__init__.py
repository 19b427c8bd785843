"""Safe, reversible fixes for broken Kafka event source mappings.

- :mod:`.registry`: fix id -> action class (``get``, ``all_actions``, ``all_permissions``);
- :mod:`.actions`: one module per action (add-sg-self-rule, create-vpc-endpoints, grant-iam-permissions,
  enable-vpc-dns);
- :mod:`.engine`: ``plan_fix``, ``apply_fix``, ``verify_fix``, ``rollback``, ``restart_esm``, ``history``;
- :mod:`.guard`: the only way a security-group rule is added (never a CIDR);
- :mod:`.audit`, :mod:`.lock`, :mod:`.budget`: the DynamoDB-backed guard rails.

Import the engine lazily (``from esm_medic.remediate.engine import apply_fix``); this package module is light.
"""
