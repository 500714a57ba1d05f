"""Create, store and retire the claim certificate: the logic, on the IoT and Secrets Manager
clients it is given.

The certificate and key pair come from IoT's CreateKeysAndCertificate, the only time IoT
returns the private key (docs.aws.amazon.com/iot/latest/apireference/
API_CreateKeysAndCertificate.html); it goes straight into the secret and nowhere else: not in
the custom resource's response (whose Data CloudFormation shows), not in a log line.
Retiring detaches the policies, deactivates the certificate and deletes it; a certificate must
be INACTIVE, with no policy or thing attached, to be deleted
(docs.aws.amazon.com/iot/latest/apireference/API_DeleteCertificate.html).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mes_domain.fleet import ClaimSecretField


@dataclass(frozen=True, slots=True)
class ClaimCertificate:
    certificate_id: str
    certificate_arn: str


def create(iot: Any, secrets: Any, policy_name: str, secret_arn: str) -> ClaimCertificate:
    """A new active certificate with the claim policy attached, its PEM and key in the secret.
    If storing or attaching fails the certificate is retired again, so none is left behind."""
    created = iot.create_keys_and_certificate(setAsActive=True)
    certificate = ClaimCertificate(created["certificateId"], created["certificateArn"])
    try:
        iot.attach_policy(policyName=policy_name, target=certificate.certificate_arn)
        secrets.put_secret_value(
            SecretId=secret_arn,
            SecretString=json.dumps(
                {
                    ClaimSecretField.CERTIFICATE_ID.value: certificate.certificate_id,
                    ClaimSecretField.CERTIFICATE_ARN.value: certificate.certificate_arn,
                    ClaimSecretField.CERTIFICATE_PEM.value: created["certificatePem"],
                    ClaimSecretField.PRIVATE_KEY.value: created["keyPair"]["PrivateKey"],
                }
            ),
        )
    except Exception:
        retire(iot, certificate.certificate_id)
        raise
    return certificate


def retire(iot: Any, certificate_id: str) -> bool:
    """Detach every policy, deactivate and delete the certificate. False if it is gone
    already (a repeated delete succeeds)."""
    try:
        arn = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"][
            "certificateArn"
        ]
    except iot.exceptions.ResourceNotFoundException:
        return False
    for page in iot.get_paginator("list_attached_policies").paginate(target=arn):
        for policy in page.get("policies", []):
            iot.detach_policy(policyName=policy["policyName"], target=arn)
    iot.update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    iot.delete_certificate(certificateId=certificate_id, forceDelete=True)
    return True
