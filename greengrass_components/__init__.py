"""Greengrass v2 edge components and the edge code they share (``common``)."""
