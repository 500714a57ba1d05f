"""Each stack holds one dependencies layer per kind, shared by all its functions."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

KINDS = {
    "Pinned third-party runtime of the MES functions": "common",
    "Pinned third-party runtime with mes_vision's": "vision",
}


def _templates(assembly) -> dict[str, dict]:
    """Every template of the assembly, nested stacks' included."""
    return {
        path.name: json.loads(path.read_text())
        for path in Path(assembly.directory).glob("*.template.json")
    }


def test_each_template_has_at_most_one_layer_of_each_kind(synthesized):
    _, assembly = synthesized
    functions_sharing = 0
    for name, template in _templates(assembly).items():
        resources = template.get("Resources", {})
        layers = {
            logical_id: KINDS[r["Properties"]["Description"]]
            for logical_id, r in resources.items()
            if r["Type"] == "AWS::Lambda::LayerVersion"
            and r["Properties"].get("Description") in KINDS
        }
        assert all(n == 1 for n in Counter(layers.values()).values()), (name, layers)
        for resource in resources.values():
            # The platform's functions; CDK's own helper functions (custom resources) have none.
            if resource["Type"] != "AWS::Lambda::Function" or not str(
                resource["Properties"].get("Handler", "")
            ).startswith("lambdas."):
                continue
            refs = [
                layer["Ref"]
                for layer in resource["Properties"].get("Layers", [])
                if isinstance(layer, dict) and layer.get("Ref") in layers
            ]
            # Every function has exactly one dependencies layer, from its own template.
            assert len(refs) == 1, (name, resource["Properties"].get("Layers"))
            functions_sharing += 1
    assert functions_sharing > sum(1 for _ in _templates(assembly))  # layers really are shared


def test_the_quality_stack_has_one_common_and_one_vision_layer(quality_template):
    layers = quality_template.find_resources("AWS::Lambda::LayerVersion")
    kinds = Counter(KINDS.get(r["Properties"].get("Description")) for r in layers.values())
    assert kinds["common"] == 1 and kinds["vision"] == 1
    functions = quality_template.find_resources("AWS::Lambda::Function")
    assert len(functions) > 2
