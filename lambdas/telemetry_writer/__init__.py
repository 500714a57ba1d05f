"""Kinesis -> Timestream writer for telemetry batches (handler, pure logic, adapters)."""
