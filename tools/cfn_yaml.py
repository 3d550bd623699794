"""Read a CloudFormation/SAM template with its short-form tags (``!Ref``, ``!Sub``, ...).

PyYAML's safe loader refuses unknown tags; this one turns each into the long
form (``{"Ref": x}``, ``{"Fn::Sub": x}``), as CloudFormation itself does.
"""

from __future__ import annotations

from pathlib import Path

import yaml


class _Loader(yaml.SafeLoader):
    pass


def _construct(loader: yaml.Loader, tag_suffix: str, node: yaml.Node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _construct)


def load_template(path: str | Path = Path(__file__).resolve().parents[1] / "template.yaml") -> dict:
    return yaml.load(Path(path).read_text(), Loader=_Loader)  # noqa: S506 (SafeLoader subclass)
