"""The two ``SyncTransport`` implementations: ``https`` (API Gateway, the default) and
``kafka`` (MSK Serverless with IAM authentication)."""
