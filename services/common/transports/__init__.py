"""The two ``SyncTransport`` implementations: ``https`` (API Gateway with IAM, the default) and
``kafka`` (MSK Serverless with IAM authentication), and ``make_transport`` to pick one from a
service's settings."""

from __future__ import annotations

from typing import Literal

from services.common.sync import SyncTransport

TransportKind = Literal["https", "kafka"]


def make_transport(
    kind: TransportKind,
    instance_id: str,
    peer: str,
    *,
    url: str | None = None,
    bootstrap_servers: str | None = None,
    region: str | None = None,
) -> SyncTransport:
    """``https``: ``url`` is the peer's base URL (API Gateway's stage URL); with ``region`` the
    requests are SigV4-signed for IAM authorization, without it unsigned (a local run).
    ``kafka``: ``bootstrap_servers`` of the MSK Serverless cluster (port 9098) and its
    ``region``, for the IAM token."""
    from services.common import aws

    if kind == "https":
        from services.common.transports.https import HttpsTransport

        if not url:
            raise ValueError("the https sync transport needs the peer's URL")
        return HttpsTransport(url, auth=aws.SigV4Auth(region) if region else None)
    if kind == "kafka":
        from services.common.transports.kafka import KafkaTransport, msk_iam_config

        if not bootstrap_servers or not region:
            raise ValueError("the kafka sync transport needs the bootstrap servers and the region")
        config = msk_iam_config(bootstrap_servers, aws.msk_oauth_callback(region))
        return KafkaTransport(instance_id, peer, config)
    raise ValueError(f"sync transport {kind!r} is neither https nor kafka")
