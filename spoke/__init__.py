"""The clinic side of Teleconsult: local case store (outbox), sync to the hub, advice received
over Socket.IO, pages for clinic doctors. Entry points: ``spoke.app.create_app``,
``spoke.serve.main``."""
