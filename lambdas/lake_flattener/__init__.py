"""Firehose processor of the data lake: Kinesis station messages -> rows of one lake table."""
