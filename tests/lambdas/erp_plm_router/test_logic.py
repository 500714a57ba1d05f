"""The router's pure parts: parsers, the supersede decision and outbound entries (no AWS)."""

import io
import json

import pytest

from lambdas.erp_plm_router.documents import DocType, UnreadableFile, inbox
from lambdas.erp_plm_router.outbound import to_event_entry
from lambdas.erp_plm_router.parsers import Format, read_documents
from lambdas.erp_plm_router.quarantine import RejectedContent
from lambdas.erp_plm_router.routing import Outcome, decide, route_documents, validate
from mes_domain.enterprise import ExecutionStatus, OrderStatusChanged, ProductionConfirmation
from tests.lambdas.erp_plm_router.conftest import SAMPLES

NOW_MS = 1_763_800_000_000


def documents(fmt, body: bytes, doc_type):
    return list(read_documents(fmt, io.BytesIO(body), DocType(doc_type)))


class MemoryStore:
    def __init__(self):
        self.items = {}

    def apply(self, batch):
        outcomes = []
        for prepared in batch:
            stored = self.items.get(prepared.key)
            outcome = decide(prepared, *(stored or (None, None)))
            if outcome is None:
                self.items[prepared.key] = (prepared.revision, prepared.content_hash)
            outcomes.append(outcome or Outcome.STORED)
        return outcomes


def test_csv_times_are_epoch_millis_or_iso_with_an_offset():
    body = (SAMPLES / "production-order.csv").read_bytes()
    first = documents(Format.CSV, body, "production-order")[0].data
    assert first["issued_at"] == 1_763_798_400_000  # 08:00Z
    assert first["planned_start"] == 1_763_874_000_000  # 06:00+01:00

    naive = body.replace(b"2025-11-22T08:00:00+00:00", b"2025-11-22T08:00:00")
    [error] = documents(Format.CSV, naive, "production-order")[0].problems
    assert (error.field, error.line) == ("issued_at", 2) and "no UTC offset" in error.reason


def test_csv_header_with_unknown_columns_makes_the_file_unreadable():
    with pytest.raises(UnreadableFile, match=r"unknown columns \['colour'\]"):
        documents(Format.CSV, b"document_id,colour\n1,red\n", "material-master")


def test_csv_bom_rows_group_into_one_document_per_id():
    bom = documents(Format.CSV, (SAMPLES / "bom.csv").read_bytes(), "bom")
    assert [len(doc.data["items"]) for doc in bom] == [3, 1]
    assert bom[0].lines[("items", 2)] == 4


def test_csv_header_columns_must_agree_across_a_documents_rows():
    body = (
        (SAMPLES / "bom.csv")
        .read_bytes()
        .replace(
            b"R,1,1763800000000,BOM-DOOR-R,DOOR-R,1,20", b"R,1,1763800000000,BOM-DOOR-R,DOOR-X,1,20"
        )
    )
    [problem] = documents(Format.CSV, body, "bom")[0].problems
    assert (problem.field, problem.line) == ("material_id", 3)


def test_idoc_statuses_and_alpha_conversion():
    orders = documents(
        Format.XML, (SAMPLES / "production-order.xml").read_bytes(), "production-order"
    )
    assert [o.data["status"] for o in orders] == ["RELEASED", "ON_HOLD"]
    assert orders[0].data["order_id"] == "3000001" and orders[0].data["revision"] == 481516
    assert orders[0].data["issued_at"] == 1_763_798_400_000  # 2025-11-22 08:00 UTC


def test_malformed_xml_after_a_good_idoc_loads_the_good_one_and_reports_the_line():
    body = (SAMPLES / "material-master.xml").read_bytes()
    broken = body.replace(b"</MATMAS05>", b"<IDOC><oops></IDOC></MATMAS05>")
    store = MemoryStore()
    report = route_documents(
        "erp",
        "material-master",
        read_documents(Format.XML, io.BytesIO(broken), DocType.MATERIAL_MASTER),
        store,
        now_ms=NOW_MS,
    )
    assert report.stored == 2
    assert "not well-formed XML" in report.file_error.reason and report.file_error.line == 42


def test_json_errors_name_the_line_of_the_list_element():
    body = b'[\n  {"v": 1},\n  {"v": 1,\n   "x": 2}\n]'
    docs = documents(Format.JSON, body, "bom")
    assert [doc.line for doc in docs] == [2, 3]
    with pytest.raises(UnreadableFile, match="line 3"):
        documents(Format.JSON, b'[\n  {"v": 1},\n  {"v": 1,, }\n]', "bom")


def test_json_lines_reject_a_broken_line_alone():
    body = b'{"a": 1}\nnot json\n\n[1]\n'
    docs = documents(Format.JSON_LINES, body, "bom")
    assert [doc.line for doc in docs] == [1, 2, 4]
    assert docs[1].problems and not docs[0].problems


def test_a_document_of_another_source_system_is_rejected():
    order = json.loads((SAMPLES / "production-order.json").read_text())[0] | {
        "source_system": "PLM"
    }
    [raw] = documents(Format.JSON, json.dumps(order).encode(), "production-order")
    [error] = validate(raw, *inbox("erp", "production-order"), NOW_MS)
    assert error.field == "source_system"


def test_outbound_entries_name_source_detail_type_and_schema_version():
    header = {"v": 1, "source_system": "MES", "revision": 0, "issued_at": NOW_MS}
    confirmation = ProductionConfirmation(
        **header,
        document_id="C-1",
        order_id="1000123",
        site="berlin",
        line="l1",
        station="s1",
        good_quantity=480,
        scrap_quantity=20,
        labour_time_s=3600,
    )
    changed = OrderStatusChanged(
        **header,
        document_id="S-1",
        order_id="1000123",
        site="berlin",
        previous_status=ExecutionStatus.RELEASED,
        status=ExecutionStatus.IN_PROGRESS,
        changed_at=NOW_MS,
    )

    entries = [to_event_entry(event, "mes-events") for event in (confirmation, changed)]

    assert [(e["Source"], e["DetailType"]) for e in entries] == [
        ("mes.enterprise", "ProductionConfirmation"),
        ("mes.enterprise", "OrderStatusChanged"),
    ]
    detail = json.loads(entries[0]["Detail"])
    assert detail["schema_version"] == 1 and detail["good_quantity"] == 480
    assert entries[1]["EventBusName"] == "mes-events"
    with pytest.raises(ValueError, match="not a change"):
        OrderStatusChanged.model_validate(
            {**changed.model_dump(), "previous_status": "IN_PROGRESS"}, context={"now_ms": NOW_MS}
        )


@pytest.mark.parametrize(
    ("fmt", "name"),
    [(Format.JSON, "material-master.json"), (Format.JSON_LINES, None),
     (Format.XML, "material-master.xml"), (Format.CSV, "material-master.csv")],
)  # fmt: skip
def test_quarantine_writes_rejects_back_in_the_files_own_format(fmt, name):
    body = b'{"a": 1}\n{"b": [2]}\n' if name is None else (SAMPLES / name).read_bytes()
    docs = documents(fmt, body, "material-master")
    out = io.StringIO()
    content = RejectedContent(fmt, "material-master", out)
    for doc in docs:
        content.add(doc)
    content.close()

    written = out.getvalue().encode()
    again = documents(fmt, written, "material-master")
    assert [doc.data for doc in again] == [doc.data for doc in docs]
    if fmt is Format.JSON:  # always a list, even of one document
        assert json.loads(written) == [doc.raw for doc in docs]
