"""Message types used across the conformance suite."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel


class Order(BaseModel):
    id: int
    item: str = "widget"


class Reserve(BaseModel):
    sku: str
    quantity: int


class Reserved(BaseModel):
    sku: str
    left: int


@dataclass
class Job:
    n: int
