"""Step Functions and CloudFormation patches for the sandbox.

moto gaps and what we do:

1. CloudFormation ``AWS::StepFunctions::StateMachine`` ignores ``DefinitionSubstitutions`` and ``Definition``
   (object form), and creates the machine in ``stepfunctions_backends`` even when ``execute_state_machine`` is
   on, i.e. in a backend whose executions never run and which the Step Functions API does not read. We replace
   the CloudFormation create / update / delete hooks: ``${key}`` placeholders of ``DefinitionString`` (or of the
   JSON-serialised ``Definition``) are replaced by the ``DefinitionSubstitutions`` values (strings as they are,
   numbers and booleans as JSON text, as CloudFormation does; unknown placeholders stay), and the machine is
   created in the backend ``moto.stepfunctions.responses.get_backend`` picks, i.e. the executing one when
   ``execute_state_machine`` is on. ``StateMachineType``, ``LoggingConfiguration`` and
   ``TracingConfiguration`` are passed on.
2. ``StartExecution`` without a ``name`` on the executing backend named the execution ``None`` (the second
   unnamed start failed with ``ExecutionAlreadyExists``); a missing name now becomes a UUID, as in AWS.
4. A ``.waitForTaskToken`` task with ``HeartbeatSeconds`` loses a SendTaskSuccess that arrives while the invoked
   Lambda is still running (before moto sets up the heartbeat wait): the answer is stored, but the wait starts
   afterwards and ends in a heartbeat timeout. In AWS the token is answerable from the moment the task starts. The
   wait now returns an outcome that is already there.
3. JSONata (``QueryLanguage: JSONata``) crashes (``'NoneType' object is not callable``) because moto expects a
   JVM bridge; when ``jsonata-python`` is installed we plug it in as moto's evaluator.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any

_APPLIED = False
_LOCK = threading.Lock()
_SUBST = re.compile(r"\$\{([^}]+)\}")


def substitute_definition(definition: str, substitutions: dict[str, Any] | None) -> str:
    """Replace ``${key}`` in ``definition`` by ``substitutions[key]`` (unknown keys stay as they are)."""
    if not substitutions:
        return definition

    def repl(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in substitutions:
            return m.group(0)
        value = substitutions[key]
        if isinstance(value, str):
            return value
        return json.dumps(value)

    return _SUBST.sub(repl, definition)


def _definition_from_properties(properties: dict[str, Any]) -> str:
    definition = properties.get("DefinitionString")
    if definition is None and properties.get("Definition") is not None:
        definition = json.dumps(properties["Definition"])
    if isinstance(definition, (dict, list)):
        definition = json.dumps(definition)
    return substitute_definition(str(definition or ""), properties.get("DefinitionSubstitutions"))


def _backend(account_id: str, region_name: str) -> Any:
    from moto.stepfunctions.responses import get_backend

    return get_backend(account_id, region_name)


def _eval_jsonata(expression: str) -> Any:
    import jsonata

    try:
        return jsonata.Jsonata(expression).evaluate(None)
    except Exception as exc:  # report like moto's JVM bridge does
        from moto.stepfunctions.parser.asl.jsonata.jsonata import JSONataException

        raise JSONataException("UNKNOWN", str(exc)) from exc


def _plug_jsonata() -> None:
    try:
        import jsonata  # noqa: F401
    except ImportError:
        return
    from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata

    moto_jsonata._eval_jsonata = _eval_jsonata


def _keep_early_callback_outcomes() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback,
    )

    cls: Any = callback.StateTaskServiceCallback
    original = cls._wait_for_task_token_heartbeat

    def wait_for_task_token_heartbeat(self: Any, env: Any, callback_endpoint: Any, heartbeat_endpoint: Any) -> Any:
        outcome = callback_endpoint.get_outcome()  # answered before the wait began
        if outcome is not None:
            return outcome
        return original(self, env, callback_endpoint, heartbeat_endpoint)

    cls._wait_for_task_token_heartbeat = wait_for_task_token_heartbeat


def apply() -> None:
    global _APPLIED
    with _LOCK:
        if _APPLIED:
            return
        from moto.stepfunctions.models import StateMachine
        from moto.stepfunctions.parser.models import StepFunctionsParserBackend
        from moto.stepfunctions.utils import cfn_to_api_tags

        def create_from_cloudformation_json(
            cls: Any,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            properties = cloudformation_json.get("Properties", {})
            name = properties.get("StateMachineName", resource_name)
            tags = cfn_to_api_tags(properties.get("Tags", []))
            return _backend(account_id, region_name).create_state_machine(
                name=name,
                definition=_definition_from_properties(properties),
                roleArn=properties.get("RoleArn", ""),
                tags=tags or None,
                loggingConfiguration=properties.get("LoggingConfiguration"),
                tracingConfiguration=properties.get("TracingConfiguration"),
                sm_type=properties.get("StateMachineType"),
            )

        def delete_from_cloudformation_json(
            cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            _backend(account_id, region_name).delete_state_machine(resource_name)

        def update_from_cloudformation_json(
            cls: Any,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> Any:
            properties = cloudformation_json.get("Properties", {})
            name = properties.get("StateMachineName", original_resource.name)
            backend = _backend(account_id, region_name)
            if name != original_resource.name:
                new = create_from_cloudformation_json(cls, name, cloudformation_json, account_id, region_name)
                backend.delete_state_machine(original_resource.arn)
                return new
            return backend.update_state_machine(
                original_resource.arn,
                definition=_definition_from_properties(properties),
                role_arn=properties.get("RoleArn"),
            )

        StateMachine.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[method-assign,assignment]
        StateMachine.delete_from_cloudformation_json = classmethod(delete_from_cloudformation_json)  # type: ignore[method-assign,assignment]
        StateMachine.update_from_cloudformation_json = classmethod(update_from_cloudformation_json)  # type: ignore[method-assign,assignment]

        orig_start = StepFunctionsParserBackend.start_execution

        def start_execution(
            self: Any,
            state_machine_arn: str,
            name: str | None = None,
            execution_input: str | None = None,
            trace_header: str | None = None,
        ) -> Any:
            start: Any = orig_start
            return start(self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header)

        StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]
        _plug_jsonata()
        _keep_early_callback_outcomes()
        _APPLIED = True
