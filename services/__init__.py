"""The MES microservices: production execution and inventory (FastAPI on PostgreSQL)."""
