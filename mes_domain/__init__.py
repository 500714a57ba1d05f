"""The MES domain shared by cloud and edge: contracts, topics and the plant hierarchy.

Pure code: pydantic models and math, no AWS SDK and no I/O, so Lambda assets and Greengrass
artifacts bundle the same package and agree by construction.
"""
