"""Quarantine in bounded memory: Given a large CSV whose every row is invalid, When routed, Then
quarantine holds every row and one error per row, written as multipart uploads that keep about
one part in memory.

A 50 MB file of invalid rows once grew the 1 GB function by about 1.9 GB (every reject, its
errors and the whole quarantine file were held until the end): it ran out of memory, was
retried, dead-lettered, and no report was ever written. For the 24 MiB file below the old code
could not run in 128 MiB of address space; the streaming one runs in 32 MiB."""

import json
import subprocess
import sys

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

from lambdas.erp_plm_router import adapters
from tests.conftest import PROJECT_ROOT
from tests.lambdas.erp_plm_router.conftest import BUCKET
from tests.lambdas.erp_plm_router.large_invalid_file import HEADER, row
from tests.lambdas.erp_plm_router.test_s3_handler import deliver, error_report

FILE_MIB = 24
BUDGET_MIB = 64
MIB = 2**20


def test_a_large_file_of_invalid_rows_is_quarantined_whole_in_bounded_memory():
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.lambdas.erp_plm_router.large_invalid_file",
            str(FILE_MIB),
            str(BUDGET_MIB),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    found = json.loads(child.stdout.strip().splitlines()[-1])

    rows = found["rows"]
    assert rows > 50_000
    assert found["response"] == {"batchItemFailures": []}  # no retry, no dead letter
    assert found["report_rejected"] == found["report_errors"] == rows
    assert found["report_lines"] is True  # one error for each line 2 .. rows + 1
    assert found["fields"] == ["material_type"]
    assert found["quarantined_rows"] == rows
    header, formula, negative = found["first_rows"]
    assert header.startswith("document_id,")
    assert ",\"'=HYPERLINK(" in formula  # neutralised on its way into quarantine
    assert ",'-1 x" in negative  # text after a minus is not a number: quoted too


def test_a_file_of_several_parts_of_rejects_is_complete_in_s3(world):
    body = (HEADER + "".join(row(i) for i in range(40_000))).encode()  # about 12 MiB
    assert len(body) > adapters.PART_BYTES

    response = deliver(world.drop("inbound/erp/material-master/m.csv", body))

    assert response == {"batchItemFailures": []}
    report = error_report(world, "erp/material-master/m.csv")
    assert report["rejected"] == len(report["errors"]) == 40_000
    assert [e["line"] for e in report["errors"]] == list(range(2, 40_002))
    quarantined = world.read("quarantine/erp/material-master/m.csv").decode().splitlines()
    assert len(quarantined) == 40_001 and quarantined[0] == HEADER.rstrip()
    assert world.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


@pytest.fixture
def s3(fake_credentials):
    with mock_aws():
        adapters.client.cache_clear()
        client = boto3.client("s3")
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
        )
        yield client
    adapters.client.cache_clear()


def test_an_upload_sends_full_parts_as_they_fill_and_holds_less_than_one(s3):
    upload = adapters.LandingBucket(BUCKET).create("quarantine/x.csv", "text/csv")
    chunk = bytes(range(256)) * 4096  # 1 MiB
    held = []
    for _ in range(19):
        upload.write(chunk)
        held.append(len(upload._buffer))
    upload.close()

    assert max(held) < adapters.PART_BYTES
    assert s3.get_object(Bucket=BUCKET, Key="quarantine/x.csv")["Body"].read() == chunk * 19
    parts = s3.head_object(Bucket=BUCKET, Key="quarantine/x.csv", PartNumber=1)["PartsCount"]
    assert parts == 3  # 8 + 8 + 3 MiB


def test_a_small_object_is_one_put_and_an_aborted_one_leaves_nothing(s3):
    small = adapters.LandingBucket(BUCKET).create("quarantine/small.json", "application/json")
    small.write(b"{}")
    small.close()
    aborted = adapters.LandingBucket(BUCKET).create("quarantine/big.csv", "text/csv")
    aborted.write(b"x" * (adapters.PART_BYTES + 1))
    aborted.abort()

    assert s3.get_object(Bucket=BUCKET, Key="quarantine/small.json")["Body"].read() == b"{}"
    listed = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert [obj["Key"] for obj in listed] == ["quarantine/small.json"]
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_parts_are_never_smaller_than_s3_allows():
    with pytest.raises(ValueError, match="at least"):
        adapters.S3Upload(BUCKET, "k", "text/csv", part_bytes=adapters.MIN_PART_BYTES - 1)
    assert adapters.MIN_PART_BYTES == 5 * MIB and adapters.MAX_PARTS == 10_000


def test_an_import_that_fails_midway_leaves_no_partial_quarantine(world, monkeypatch):
    body = (HEADER + "".join(row(i) for i in range(30_000))).encode()
    record = world.drop("inbound/erp/material-master/fails.csv", body)
    real_send = adapters.S3Upload._send_part
    sent = []

    def fail_after_first_part(self):
        if sent:
            raise ConnectionError("S3 went away")
        sent.append(self.key)
        real_send(self)

    monkeypatch.setattr(adapters.S3Upload, "_send_part", fail_after_first_part)

    with pytest.raises(BatchProcessingError, match="All records failed"):
        deliver(record)  # SQS will deliver it again

    assert world.keys("quarantine/") == []
    assert world.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
