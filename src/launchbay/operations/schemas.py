"""Base of every operation's input and output: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)
from pydantic.alias_generators import to_camel

from launchbay.schemas_time import iso

Timestamp = Annotated[datetime, PlainSerializer(iso, return_type=str)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=100)]
# The most rows a list answers when its face has no paging (Shipyard's and Dploy's lists):
# a page of the first ones, never the whole table.
UNPAGED_MAX = 1000
ImageUrl = Annotated[str, StringConstraints(max_length=2000, pattern=r"^(https?://|/)")]
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _address(value: str) -> str:
    """Any syntactically valid address, intranet domains included (`.local`, `.internal`,
    `.lan`): people sign in with the address they have; nothing is sent to it."""
    from email_validator import EmailNotValidError, validate_email

    local, at, domain = value.strip().rpartition("@")
    try:
        ascii_domain = domain.encode("idna").decode().lower()
    except UnicodeError:
        raise ValueError("the part after the @-sign is not a valid domain") from None
    if not at or len(ascii_domain) > 253 or \
            not all(_LABEL.match(label) for label in ascii_domain.split(".")):
        raise ValueError("the part after the @-sign is not a valid domain")
    try:  # the local part, by the rules of a public address
        checked = validate_email(f"{local}@example.com", check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return f"{checked.local_part}@{ascii_domain}"


Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_address)]


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              defer_build=True)


def apply_update(target: object, data: BaseModel, *, required: tuple[str, ...] = (),
                 exclude: set[str] | None = None) -> list[str]:
    """Copies the fields a partial update sent onto `target`; `required` ones cannot be null."""
    from launchbay.operations.errors import Invalid

    changes = data.model_dump(exclude_unset=True, exclude=exclude)
    nulls = [name for name in required if name in changes and changes[name] is None]
    if nulls:
        raise Invalid("Validation failed", details=[
            {"field": type(data).model_fields[n].alias or n, "message": "must not be null"}
            for n in nulls])
    for name, value in changes.items():
        setattr(target, name, value)
    return sorted(changes)


class IdOut(Schema):
    id: str


class CountOut(Schema):
    count: int


class Empty(Schema):
    pass


__all__ = ["CountOut", "Email", "Empty", "Field", "Id", "IdOut", "ImageUrl", "Name", "Schema",
           "Timestamp", "apply_update", "iso"]
