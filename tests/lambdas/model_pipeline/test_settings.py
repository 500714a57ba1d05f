"""The pipeline's environment: defaults, bounds, and the keys a step requires."""

import pytest
from pydantic import ValidationError

from lambdas.model_pipeline.settings import PLANT_LAYER_FILE, EnvVar, MissingSetting, Settings


def test_defaults_apply_when_only_the_resources_are_set():
    settings = Settings.from_environ({EnvVar.MODELS_TABLE: "models"})

    assert settings.min_auroc == 0.9
    assert settings.min_defect_recall == 0.8
    assert settings.min_good_images == 20
    assert settings.plant_file == PLANT_LAYER_FILE == "/opt/plant/plant.json"


def test_numbers_are_parsed_from_text_and_bounded():
    settings = Settings.from_environ({EnvVar.MIN_AUROC: "0.95", EnvVar.MIN_GOOD_IMAGES: "50"})
    assert (settings.min_auroc, settings.min_good_images) == (0.95, 50)

    with pytest.raises(ValidationError, match="min_auroc"):
        Settings.from_environ({EnvVar.MIN_AUROC: "1.5"})
    with pytest.raises(ValidationError, match="min_good_images"):
        Settings.from_environ({EnvVar.MIN_GOOD_IMAGES: "0"})


def test_the_thing_group_prefix_is_a_thing_group_arn_up_to_the_name():
    good = "arn:aws:iot:eu-central-1:123456789012:thinggroup/"
    assert Settings.from_environ({EnvVar.THING_GROUP_ARN_PREFIX: good}).thing_group_arn_prefix

    # The group name comes from mes_domain.naming: a prefix carrying part of it (the old
    # "thinggroup/<stack prefix>-") would name groups that do not exist.
    for bad in ("MesDemo-", good + "MesDemo-"):
        with pytest.raises(ValidationError, match="thing_group_arn_prefix"):
            Settings.from_environ({EnvVar.THING_GROUP_ARN_PREFIX: bad})


def test_require_names_every_missing_key():
    settings = Settings.from_environ({EnvVar.MODELS_TABLE: "models"})

    assert settings.require(EnvVar.MODELS_TABLE) is settings
    with pytest.raises(MissingSetting, match="DATASET_BUCKET, MODEL_BUCKET"):
        settings.require(EnvVar.DATASET_BUCKET, EnvVar.MODEL_BUCKET, EnvVar.MODELS_TABLE)
