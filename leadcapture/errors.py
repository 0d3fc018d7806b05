"""Domain errors raised by services and translated by the web and CLI layers."""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """Base class for errors a caller is expected to handle."""


class NotFound(DomainError):
    """The named object does not exist."""


class InvalidInput(DomainError):
    """Input failed validation; `errors` maps each field to a message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = dict(errors)


class OriginNotAllowed(DomainError):
    """A browser origin tried to use a widget it is not allowed to embed."""


class TokenInvalid(DomainError):
    """A signed link was tampered with, malformed or meant for something else."""


class TokenExpired(DomainError):
    """A signed link was genuine but is past its age limit."""

    def __init__(self, payload: Mapping[str, object]) -> None:
        super().__init__("token expired")
        self.payload = dict(payload)


class ConfigError(Exception):
    """A configuration variable is missing or malformed."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
