"""Onboarding Greengrass gateways by claim: the API (``api``), its AWS adapter (``aws``, the only
module here that imports boto3), the bundle writer (``bundle``, ``nucleus_config``) and the CLI
(``python -m mes_gateway``). See docs/onboarding.md."""
