"""How the hub is deployed at scale: the nginx configuration (``nginx.conf.j2``), a systemd unit
for hub processes on a server (``systemd/``), and ``teleconsult cluster`` (``cluster.py``)."""
