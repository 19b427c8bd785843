"""Safe, reversible fixes for broken Kafka event source mappings.

- :mod:`.registry`: fix id -> action class (``get``, ``all_actions``, ``all_permissions``);
- :mod:`.actions`: one module per action (add-sg-self-rule, create-vpc-endpoints, grant-iam-permissions,
  enable-vpc-dns);
- :mod:`.engine`: ``plan_fix``, ``apply_fix``, ``verify_fix``, ``rollback``, ``restart_esm``, ``history`` (the
  phases live in :mod:`.prepare`, :mod:`.applying`, :mod:`.restart`, :mod:`.verification`, :mod:`.undo`);
- :mod:`.scope`: the ESM's own network (groups, subnets, VPC, broker ports): the only place a fix may touch;
- :mod:`.guard`: the only way a security-group rule is added (never a CIDR, never outside the scope);
- :mod:`.audit`, :mod:`.lock`, :mod:`.budget`: the DynamoDB-backed guard rails.

Import the engine lazily (``from esm_medic.remediate.engine import apply_fix``); this package module is light.
"""
