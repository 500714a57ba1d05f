"""The custom resource's properties and attributes, shared with the construct that creates it
(the CDK app imports only this module)."""

from __future__ import annotations

POLICY_NAME = "PolicyName"  # the claim policy, attached to the certificate
SECRET_ARN = "SecretArn"  # where the certificate and its private key go

# Attributes (Fn::GetAtt): public facts only, never the key.
CERTIFICATE_ID = "CertificateId"
CERTIFICATE_ARN = "CertificateArn"
