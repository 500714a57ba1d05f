-- Genealogy of a production order: the order, each operation confirmed against it (station, good and scrap), the materials each operation consumed, and the non-conformances of its parts, as one tree (depth 0 to 2).
--
-- Parameters, in this order: site, order id, repeated once per table read (orders,
-- confirmations, non-conformances), e.g. 'berlin', 'PO-BODY-LINE-1-1', 'berlin',
-- 'PO-BODY-LINE-1-1', 'berlin', 'PO-BODY-LINE-1-1'. Every day of the site is read: orders
-- and their events are few rows, and an order's life has no fixed span.
--
-- Each document counts in its latest revision. A non-conformance hangs under the operation
-- of its station (none when no operation there was confirmed). The lots consumed are not in
-- the lake: confirmations carry materials and quantities.
WITH
orders AS (
    SELECT
        order_id, line, material_id, quantity, uom, status, planned_start,
        row_number() OVER (PARTITION BY order_id ORDER BY revision DESC, issued_at DESC) AS nth
    FROM "${database}".production_orders
    WHERE site = ? AND order_id = ?
),
confirmations AS (
    SELECT
        order_id, line, operation_no, station, document_id, good_quantity, scrap_quantity,
        materials_consumed, final, finished_at,
        row_number() OVER (PARTITION BY document_id ORDER BY revision DESC, issued_at DESC) AS nth
    FROM "${database}".production_confirmations
    WHERE site = ? AND order_id = ?
),
reports AS (
    SELECT
        order_id, line, station, ncr_id, part_id, defect_code, detected_at,
        row_number() OVER (PARTITION BY ncr_id ORDER BY revision DESC, issued_at DESC) AS nth
    FROM "${database}".nonconformances
    WHERE site = ? AND order_id = ?
),
operations AS (
    SELECT * FROM confirmations WHERE nth = 1
),
-- By position rather than UNNEST ... AS m (material_id, quantity, uom): that form expands the
-- struct in Trino but not in DuckDB, where the tests run it. element_at past the end is NULL.
materials AS (
    SELECT o.*, element_at(o.materials_consumed, item_no) AS material
    FROM operations AS o
    CROSS JOIN UNNEST(sequence(1, greatest(cardinality(o.materials_consumed), 1))) AS items (item_no)
),
tree (depth, node, order_id, line, operation_no, station, item_id, quantity, scrap_quantity, uom, detail, at_ms) AS (
    SELECT
        0, 'order', order_id, line, CAST(NULL AS bigint), CAST(NULL AS varchar), material_id,
        quantity, CAST(NULL AS double), uom, status, planned_start
    FROM orders
    WHERE nth = 1
    UNION ALL
    SELECT
        1, 'operation', order_id, line, operation_no, station, document_id, good_quantity,
        scrap_quantity, CAST(NULL AS varchar), IF(final, 'final', 'partial'), finished_at
    FROM operations
    UNION ALL
    SELECT
        2, 'material', order_id, line, operation_no, station, material.material_id,
        material.quantity, CAST(NULL AS double), material.uom, CAST(NULL AS varchar), finished_at
    FROM materials
    WHERE material IS NOT NULL
    UNION ALL
    SELECT
        2, 'nonconformance', r.order_id, r.line, o.operation_no, r.station, r.part_id,
        CAST(NULL AS double), CAST(NULL AS double), CAST(NULL AS varchar),
        concat(r.defect_code, ' ', r.ncr_id), r.detected_at
    FROM reports AS r
    LEFT JOIN operations AS o ON o.order_id = r.order_id AND o.station = r.station
    WHERE r.nth = 1
)
SELECT *
FROM tree
ORDER BY operation_no NULLS FIRST, depth, node, item_id, at_ms
