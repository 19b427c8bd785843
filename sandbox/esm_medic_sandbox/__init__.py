"""esm-medic's local sandbox: moto 5.2.5 plus the patches esm-medic needs, with no AWS account and no Docker.

Importing this package is cheap (no moto, no boto3); the pieces load on use:

- :mod:`esm_medic_sandbox.env`      ``sandbox()`` (env + moto + patches + in-process Lambda -> an ``Aws``),
                                    ``sandbox_env()`` (fake credentials, us-east-1);
- :mod:`esm_medic_sandbox.patches`  ``apply()`` every moto patch (idempotent) and the ESM status API
                                    (``set_esm_status`` / ``clear_esm_status`` / ``set_status_provider``);
- :mod:`esm_medic_sandbox.inproc`   ``register_handler(name, handler)`` / ``clear_handlers()``: run Lambda code
                                    in this process;
- :mod:`esm_medic_sandbox.iam_sim`  the local IAM policy evaluator behind SimulatePrincipalPolicy;
- :mod:`esm_medic_sandbox.server`   ``serve()`` a patched ThreadedMotoServer for other processes
                                    (``esm-medic sandbox serve``), with the ``/moto-api/esm-medic/`` control
                                    routes.

Production code never imports this package (only the CLI's ``sandbox`` / ``demo`` commands, lazily).
"""

from __future__ import annotations

from typing import Any

__all__ = ["sandbox", "sandbox_env"]


def __getattr__(name: str) -> Any:
    if name in ("sandbox", "sandbox_env"):
        from esm_medic_sandbox import env

        return getattr(env, name)
    raise AttributeError(f"module 'esm_medic_sandbox' has no attribute {name!r}")
