"""Lambda functions: one folder per function (handler plus its logic)."""
