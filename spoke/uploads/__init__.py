"""Files a clinic doctor uploads on a case page: DICOM files, photos (JPEG/PNG) and PDF reports.

Offline first, in four parts with one job each:

- ``convert``: one uploaded file checked by its content (not its name) and turned into one DICOM
  instance (photos become Secondary Capture, PDFs Encapsulated PDF, DICOM files are taken as
  they are once their UIDs are well formed);
- ``service``: one upload batch of a case: convert every file (one bad file refuses the batch),
  de-identify when the clinic chose to (the same profile as the bridge), queue them;
- ``queue``: the durable queue on disk, ``<data_dir>/uploads/<case uid>/``, every file named by
  the spoke (a hash), never by what the client sent;
- ``worker``: sends waiting instances to the hub's STOW-RS (``X-Case-UID``) once the case itself
  is at the hub, retrying with backoff; the hub's confirmation removes the file, a refusal moves
  it aside and keeps the reason for the page.

The page (``spoke.upload_page``, outside this package so that it closes no cycle with the pages
it uses) only parses the form and calls the service.
"""

from spoke.uploads.convert import ENCAPSULATED_PDF, SECONDARY_CAPTURE, UploadRefused
from spoke.uploads.queue import UploadQueue
from spoke.uploads.service import UploadService
from spoke.uploads.worker import UploadWorker, build_worker

__all__ = [
    "ENCAPSULATED_PDF",
    "SECONDARY_CAPTURE",
    "UploadQueue",
    "UploadRefused",
    "UploadService",
    "UploadWorker",
    "build_worker",
]
