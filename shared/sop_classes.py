"""SOP classes the product treats specially (DICOM PS3.4 Annex B)."""

from __future__ import annotations

# A PDF report wrapped in DICOM: shown at the hub as a document to open, not as an image.
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
DOCUMENT_CLASSES = frozenset({ENCAPSULATED_PDF})
