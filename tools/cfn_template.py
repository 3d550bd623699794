"""template.yaml read the way cfn-lint reads it, and its intrinsic functions worked out for given parameters.

Reading goes through cfn-lint's own decoder (``cfnlint.decode``), the one
``make template-check`` lints with, so the tests, the local runner and the
linters agree on what the template says: short-form tags (``!Sub``) in their
long form (``{"Fn::Sub": ...}``), YAML aliases expanded.

``Resolver`` evaluates what a policy or an environment uses (``Ref``,
``Fn::Sub``, ``Fn::Join``, ``Fn::Split``, ``Fn::Select``, ``Fn::If``,
``Fn::GetAtt`` and the condition functions) for chosen parameter values, as
CloudFormation does at deploy time, so the IAM checks read plain JSON
policies and the local runner gets the functions' environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "ec2-sessions",
    "AWS::URLSuffix": "amazonaws.com",
}
NO_VALUE = "AWS::NoValue"
_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


class Unresolved(Exception):
    """A value that has no meaning outside a deployed stack (a resource's name or attribute nobody supplied)."""


def load_template(path: str | Path = TEMPLATE) -> dict[str, Any]:
    template, errors = decode(str(path))
    if errors or template is None:
        raise ValueError(f"{path}: {'; '.join(str(error) for error in errors)}")
    return template


class Resolver:
    """The template's values for one set of parameters.

    ``parameters`` override the template's defaults; ``pseudo`` the sample
    pseudo parameters; ``resources`` give values to ``Ref <resource>`` and
    ``Fn::GetAtt`` (keyed ``"Logical"`` and ``"Logical.Attribute"``). A value
    that needs a resource not given raises ``Unresolved``.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str] | None = None,
        pseudo: Mapping[str, str] | None = None,
        resources: Mapping[str, Any] | None = None,
    ) -> None:
        declared = template.get("Parameters", {})
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise KeyError(f"not parameters of the template: {sorted(unknown)}")
        self.parameters = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
        self.parameters.update(parameters or {})
        self.pseudo = {**PSEUDO_PARAMETERS, **(pseudo or {})}
        self.resources: Mapping[str, Any] = resources if resources is not None else {}
        self._conditions = template.get("Conditions", {})

    def condition(self, name: str) -> bool:
        return self._truth(self._conditions[name])

    def resolve(self, value: Any) -> Any:
        """``value`` with every function evaluated; ``AWS::NoValue`` items and keys dropped."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _DROP]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, argument)] = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._function(key, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _DROP}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Ref":
            return self._ref(argument)
        if name == "Fn::If":
            condition, yes, no = argument
            return self.resolve(yes if self.condition(condition) else no)
        if name == "Fn::Sub":
            return self._sub(argument)
        if name == "Fn::Join":
            separator, items = argument
            return str(self.resolve(separator)).join(str(item) for item in self._list(items))
        if name == "Fn::Split":
            separator, source = argument
            return str(self.resolve(source)).split(str(self.resolve(separator)))
        if name == "Fn::Select":
            index, items = argument
            return self._list(items)[int(self.resolve(index))]
        if name == "Fn::GetAtt":
            logical, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            return self._resource(f"{logical}.{attribute}")
        raise NotImplementedError(f"{name} is not evaluated here; teach tools/cfn_template.py")

    def _ref(self, name: str) -> Any:
        if name == NO_VALUE:
            return _DROP
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._resource(name)

    def _resource(self, key: str) -> Any:
        if key not in self.resources:
            raise Unresolved(key)
        return self.resources[key]

    def _list(self, value: Any) -> list[Any]:
        resolved = self.resolve(value)
        if not isinstance(resolved, list):
            raise TypeError(f"expected a list, got {resolved!r}")
        return resolved

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: self.resolve(value) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self._resource(name))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")

    def _truth(self, condition: Any) -> bool:
        [(name, argument)] = condition.items()
        if name == "Condition":
            return self.condition(argument)
        if name == "Fn::Not":
            return not self._truth(argument[0])
        if name == "Fn::And":
            return all(self._truth(item) for item in argument)
        if name == "Fn::Or":
            return any(self._truth(item) for item in argument)
        if name == "Fn::Equals":
            left, right = (self.resolve(side) for side in argument)
            return str(left) == str(right)
        raise NotImplementedError(f"condition function {name}")


class _Drop:
    """``AWS::NoValue``: the item or key it stands for is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


_DROP = _Drop()
