"""DynamoDB items as the low-level client takes and returns them: every attribute in its typed
form (``{"S": "text"}``, ``{"N": "12"}``, ``{"B": b"..."}``), an item or a key by attribute name.
"""

from __future__ import annotations

from typing import TypedDict


class AttributeValue(TypedDict, total=False):
    """One attribute value; DynamoDB sets exactly one of these keys."""

    S: str
    N: str
    B: bytes
    BOOL: bool
    NULL: bool
    L: list[AttributeValue]
    M: dict[str, AttributeValue]
    SS: list[str]
    NS: list[str]


Item = dict[str, AttributeValue]
"""An item, or a key (``pk`` and ``sk``), by attribute name."""


class PutRequest(TypedDict):
    Item: Item


class DeleteRequest(TypedDict):
    Key: Item


class WriteRequest(TypedDict, total=False):
    """One request of a BatchWriteItem: a put or a delete."""

    PutRequest: PutRequest
    DeleteRequest: DeleteRequest


class GetItemOutput(TypedDict, total=False):
    """What GetItem answers: the item, when there is one."""

    Item: Item


def dynamo_key(pk: str, sk: str) -> Item:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def key_of(item: Item) -> Item:
    """The ``pk``/``sk`` key of a stored item."""
    return {"pk": item["pk"], "sk": item["sk"]}


def put(item: Item) -> WriteRequest:
    return {"PutRequest": {"Item": item}}


def delete(item_key: Item) -> WriteRequest:
    return {"DeleteRequest": {"Key": item_key}}


__all__ = [
    "AttributeValue",
    "GetItemOutput",
    "Item",
    "WriteRequest",
    "delete",
    "dynamo_key",
    "key_of",
    "put",
]
