"""The clinic's DICOM bridge: a DICOM server (pynetdicom negotiates, our loop streams each
instance to disk) that spools instances durably and forwards them to the hub over STOW-RS.

Runs in its own process (``python -m dicom_bridge``), never in an eventlet-patched one.
"""
