"""The time-series sink for telemetry, behind one construct.

Timestream for LiveAnalytics is closed to new customers since June 2025. Everything outside
this module sees only the database and table names and the backend switch in the plant
config, so Timestream for InfluxDB can be added here without touching the rest.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_timestream as timestream
from constructs import Construct

from mes_domain.plant import Retention, TimeseriesBackend
from stacks.compliance import acknowledge

TELEMETRY_TABLE = "telemetry"  # telemetry readings
EVENTS_TABLE = "events"  # state changes and part counts, read by the KPI engine
KPI_TABLE = "kpis"  # KPIs the KPI engine writes back
REJECTED_DATA_PREFIX = "timestream-rejected/"


class TimeSeriesStore(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        backend: TimeseriesBackend,
        database_name: str,
        retention: Retention,
        encryption_key: kms.IKey,
        rejected_data_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        if backend is not TimeseriesBackend.TIMESTREAM:  # pragma: no cover - enum has one member
            raise ValueError(f"time-series backend {backend} is not implemented")

        database = timestream.CfnDatabase(
            self, "Database", database_name=database_name, kms_key_id=encryption_key.key_arn
        )
        # Kept on stack deletion and replacement, like every store of plant data.
        database.apply_removal_policy(RemovalPolicy.RETAIN)
        self._acknowledge_maintenance_mode(database)
        self.backend = backend
        self.database_name = database_name
        self.table_arns: dict[str, str] = {}
        for construct_id_, name in (
            ("TelemetryTable", TELEMETRY_TABLE),
            ("EventsTable", EVENTS_TABLE),
            ("KpiTable", KPI_TABLE),
        ):
            table = timestream.CfnTable(
                self,
                construct_id_,
                database_name=database_name,
                table_name=name,
                retention_properties={
                    "MemoryStoreRetentionPeriodInHours": str(retention.timeseries_memory_hours),
                    "MagneticStoreRetentionPeriodInDays": str(retention.timeseries_magnetic_days),
                },
                # Late data (a gateway back online after hours) lands in the magnetic store.
                magnetic_store_write_properties={
                    "EnableMagneticStoreWrites": True,
                    "MagneticStoreRejectedDataLocation": {
                        "S3Configuration": {
                            "BucketName": rejected_data_bucket.bucket_name,
                            "EncryptionOption": "SSE_KMS",
                            "KmsKeyId": encryption_key.key_arn,
                            "ObjectKeyPrefix": f"{REJECTED_DATA_PREFIX}{name}/",
                        }
                    },
                },
            )
            table.node.add_dependency(database)
            table.apply_removal_policy(RemovalPolicy.RETAIN)
            self._acknowledge_maintenance_mode(table)
            self.table_arns[name] = table.attr_arn
        self.table_name = TELEMETRY_TABLE
        self.table_arn = self.table_arns[TELEMETRY_TABLE]
        self.events_table_name = EVENTS_TABLE
        self.kpi_table_name = KPI_TABLE

    @staticmethod
    def _acknowledge_maintenance_mode(resource: timestream.CfnDatabase | timestream.CfnTable):
        # Deliberate: LiveAnalytics stays the default until the InfluxDB backend exists.
        reason = (
            "Timestream for LiveAnalytics is in maintenance mode; it is the documented "
            "default sink and is isolated in this construct for an InfluxDB replacement."
        )
        acknowledge(resource, "CloudFormation-Validate::W3697", reason)
        resource.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3697"]}})
