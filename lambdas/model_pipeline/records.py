"""The registry record of a newly trained model, from the pipeline's state."""

from __future__ import annotations

from typing import Any

from lambdas.model_pipeline.gate import measured
from lambdas.model_pipeline.registry import Gate, Lineage, ModelRecord, ModelStatus, now_iso
from lambdas.model_pipeline.requests import RegisterEvent

GATE_REVIEWER = "quality-gate"  # who rejected a model that failed the gate
CARD_METRICS = ("auroc", "defect_recall", "false_reject_rate")


def metrics(card: dict[str, Any]) -> dict[str, float | None]:
    """The card's headline figures; None where a metric could not be measured."""
    validation = card.get("validation") or {}
    figures = {name: measured(validation.get(name)) for name in CARD_METRICS}
    return {"threshold": measured(card.get("threshold")), **figures}


def new_record(event: RegisterEvent, model_bucket: str) -> ModelRecord:
    """TRAINED when the gate passed; otherwise REJECTED by the gate, with its reasons."""
    passed = event.evaluation.passed
    rejected = (
        {}
        if passed
        else {
            "rejected_by": GATE_REVIEWER,
            "rejected_at": now_iso(),
            "rejection_reasons": event.evaluation.reasons,
        }
    )
    card = event.training.card
    return ModelRecord(
        station=event.station_key,
        model_version=event.training.model_version,
        status=ModelStatus.TRAINED if passed else ModelStatus.REJECTED,
        requested_by=event.requested_by,
        requested_by_sub=event.requested_by_sub,
        metrics=metrics(card),
        gate=Gate(**event.evaluation.model_dump()),
        lineage=Lineage(
            dataset_bucket=event.dataset.bucket,
            dataset_prefix=event.dataset.prefix,
            content_hash=event.dataset.content_hash,
            good_images=event.dataset.good_images,
            defect_images=event.dataset.defect_images,
            dataset_sha256=card.get("dataset_sha256"),
        ),
        model_bucket=model_bucket,
        model_prefix=event.training.s3_prefix,
        card=card,
        **rejected,
    )
