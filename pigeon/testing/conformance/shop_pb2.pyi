from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Order(_message.Message):
    __slots__ = ("id", "sku", "quantity")
    ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    id: int
    sku: str
    quantity: int
    def __init__(self, id: _Optional[int] = ..., sku: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class Reserved(_message.Message):
    __slots__ = ("sku", "left")
    SKU_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    sku: str
    left: int
    def __init__(self, sku: _Optional[str] = ..., left: _Optional[int] = ...) -> None: ...
