"""Deploy-time custom resource: the fleet's claim certificate, its key kept in Secrets Manager."""
