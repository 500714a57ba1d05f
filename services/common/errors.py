"""What a command can run into, each with its HTTP status; the app turns them into responses
that say what and why."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    """The state changed under the client (version), or the command id was used for another
    body, or this instance does not run the order."""

    status = 409


class RuleViolation(ServiceError):
    """Well-formed, but the domain forbids it (e.g. more stock issued than there is)."""

    status = 422
