"""Base of every operation's input and output: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints
from pydantic.alias_generators import to_camel


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[datetime, PlainSerializer(iso, return_type=str)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class IdOut(Schema):
    id: str


class CountOut(Schema):
    count: int


class Empty(Schema):
    pass


__all__ = ["CountOut", "Empty", "Field", "Id", "IdOut", "Name", "Schema", "Timestamp", "iso"]
