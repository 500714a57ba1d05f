"""The plant config layer puts the plant file where the functions read it, both sides naming
it through ``lambdas.common.contract``."""

from pathlib import PurePosixPath

from lambdas.common.contract import LAYER_ROOT, PLANT_IN_LAYER, PLANT_LAYER_FILE
from lambdas.common.plant import PLANT_LAYER_FILE as READ_FROM
from lambdas.common.plant import load_plant
from stacks.constructs.plant_config_layer import stage_plant


def test_functions_read_the_plant_where_the_layer_puts_it(demo_plant, tmp_path):
    staged_layer_root = stage_plant(demo_plant, tmp_path)  # what Lambda mounts at LAYER_ROOT
    in_function = PurePosixPath(READ_FROM)

    assert in_function.is_relative_to(LAYER_ROOT)
    staged = staged_layer_root / in_function.relative_to(LAYER_ROOT)
    assert load_plant(str(staged)) == demo_plant
    assert READ_FROM == PLANT_LAYER_FILE == str(LAYER_ROOT / PLANT_IN_LAYER)
    assert PLANT_LAYER_FILE == "/opt/plant/plant.json"  # the path the README documents
