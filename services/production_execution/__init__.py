"""MES production execution (ISA-95 Part 3 work management)."""
