"""CDK stacks (one module per stack) and their constructs (``stacks/constructs``)."""
