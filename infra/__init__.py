"""esm-medic's CDK app (Python). It reads the state machine (ASL), the EventBridge patterns and the table
definitions as data, and takes the remediation IAM actions from what the remediation actions declare."""
