"""The ``teleconsult`` command and the infrastructure hub and spoke share (database engine,
migrations runner, process helpers)."""
