"""What a request of the spoke works with: settings, the local store, accounts, the workers."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from flask import current_app, request

from config.settings import Settings
from shared.clock import Clock
from shared.errors import NotAuthenticated
from spoke.accounts import Accounts, ClinicDoctor
from spoke.hub_api import HubApi
from spoke.hub_client import HubClient
from spoke.outbox import OutboxWorker
from spoke.store import CaseStore
from spoke.uploads.service import UploadService
from spoke.uploads.worker import UploadWorker
from teleconsult.db import Database


@dataclass
class Spoke:
    settings: Settings
    db: Database
    clock: Clock
    hub_api: HubApi
    store: CaseStore
    accounts: Accounts
    outbox: OutboxWorker
    hub_client: HubClient
    uploads: UploadWorker | None = None
    upload_service: UploadService | None = None

    def start(self) -> None:
        """Start the background workers (the server does; tests may)."""
        self.outbox.start()
        self.hub_client.start()
        if self.uploads is not None:
            self.uploads.start()

    def stop(self) -> None:
        if self.uploads is not None:
            self.uploads.stop()
        self.hub_client.stop()
        self.outbox.stop()


def spoke() -> Spoke:
    ext: Spoke = current_app.extensions["spoke"]
    return ext


def bearer_doctor() -> ClinicDoctor:
    """The clinic doctor of the request's bearer token (401 otherwise)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Sign in first: send 'Authorization: Bearer <token>'.")
    return spoke().accounts.authenticate(token.strip())


def bearer_service() -> None:
    """Check the caller is this clinic's own bridge: it holds the spoke's service token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = str(spoke().settings.spoke_token or "")
    if (
        scheme.lower() != "bearer"
        or not expected
        or not hmac.compare_digest(token.strip(), expected)
    ):
        raise NotAuthenticated("Send the spoke's service token: 'Authorization: Bearer <token>'.")
