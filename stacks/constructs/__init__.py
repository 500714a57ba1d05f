"""One module per capability; each construct owns its resources and runtime code."""
