"""Edge code shared by the Greengrass components: the transport interface and recipe models."""
