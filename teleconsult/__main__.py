"""``python -m teleconsult``: the same as the ``teleconsult`` command."""

from teleconsult.cli import main

main()
