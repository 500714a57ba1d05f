"""The inventory service: stock per location and lot, receipts, issues, transfers, reservations
for released orders, consumption from production execution, and availability for ERP."""
