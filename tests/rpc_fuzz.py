"""Random request messages for any RPC, from the proto descriptors, and the rule every
answer to them must follow.

A service that is handed arbitrary bytes of a valid message (any field set or not, any
number, enum values outside the enum, strings of any characters, nested messages, repeated
fields) must answer, within its deadline, either OK or a status that tells the caller what
to fix, with a message: never UNKNOWN or INTERNAL (a crash turned into a status), never a
hang. The strategy is built from the descriptors, so a field added to a proto is fuzzed
without touching this file.
"""

from __future__ import annotations

import math

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

# Statuses that say what is wrong and what to do; anything else is a failure.
TOLD = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ALREADY_EXISTS,
}

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_SCALARS = {
    FieldDescriptor.TYPE_INT32: st.integers(*_INT32),
    FieldDescriptor.TYPE_SINT32: st.integers(*_INT32),
    FieldDescriptor.TYPE_SFIXED32: st.integers(*_INT32),
    FieldDescriptor.TYPE_INT64: st.integers(*_INT64),
    FieldDescriptor.TYPE_SINT64: st.integers(*_INT64),
    FieldDescriptor.TYPE_SFIXED64: st.integers(*_INT64),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True, allow_infinity=True),
    # Small numbers and edge numbers matter more than the whole range.
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
}
# Text of every kind, weighted towards what parsers trip on, short enough to run fast.
_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "0", "-1", "1e309", "nan", "../../etc/passwd", "a" * 300, "\x00", "```python\n"]),
)


def _field_value(field: FieldDescriptor, depth: int) -> st.SearchStrategy:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    if field.type == FieldDescriptor.TYPE_ENUM:
        known = [value.number for value in field.enum_type.values]
        # Open enums: a number outside the enum must be refused, not trusted.
        return st.one_of(st.sampled_from(known), st.integers(-5, 1000))
    if field.type == FieldDescriptor.TYPE_STRING:
        return _TEXT
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
        edges = st.sampled_from([0, 1, -1, 2, 64, 10**6, _INT32[1]])
        return st.one_of(edges, _SCALARS[field.type])
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        edges = st.sampled_from([0.0, 1.0, -1.0, 0.5, math.inf, -math.inf, math.nan, 1e300])
        return st.one_of(edges, _SCALARS[field.type])
    return _SCALARS[field.type]


def _set_field(draw: st.DrawFn, message: Message, field: FieldDescriptor, depth: int) -> None:
    """Give one field of message a random value: a map's entries, a repeated field's
    items, a nested message, or a scalar."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        entry_fields = field.message_type.fields_by_name
        key_field, value_field = entry_fields["key"], entry_fields["value"]
        keys, values = _field_value(key_field, depth), _field_value(value_field, depth)
        target = getattr(message, field.name)
        for key, entry in draw(st.dictionaries(keys, values, max_size=3)).items():
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                target[key].CopyFrom(entry)
            else:
                target[key] = entry
        return
    value = _field_value(field, depth)
    if field.is_repeated:
        items = draw(st.lists(value, max_size=3))
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in items:
                getattr(message, field.name).add().CopyFrom(item)
        else:
            getattr(message, field.name).extend(items)
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(message, field.name).CopyFrom(draw(value))
    else:
        setattr(message, field.name, draw(value))


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> Message:
    message = GetMessageClass(descriptor)()
    if depth > 3:
        return message
    for field in descriptor.fields:
        if draw(st.booleans()):
            _set_field(draw, message, field, depth)
    return message


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any message of this type, nested messages to a few levels."""
    return _message(descriptor, depth)


def field_paths(descriptor: Descriptor, depth: int = 0) -> list[tuple[FieldDescriptor, ...]]:
    """Every field reachable through singular message fields, as paths from the top."""
    paths: list[tuple[FieldDescriptor, ...]] = []
    for field in descriptor.fields:
        paths.append((field,))
        if field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated and depth < 3:
            paths.extend((field, *rest) for rest in field_paths(field.message_type, depth + 1))
    return paths


@st.composite
def _mutant(draw: st.DrawFn, seed: Message) -> Message:
    message = type(seed)()
    message.CopyFrom(seed)
    paths = field_paths(seed.DESCRIPTOR)
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        parent = message
        for step in path[:-1]:
            parent = getattr(parent, step.name)
        parent.ClearField(path[-1].name)
        _set_field(draw, parent, path[-1], len(path))
    return message


def requests(descriptor: Descriptor, seed: Message | None = None) -> st.SearchStrategy[Message]:
    """Random messages of the type, and, given a valid request, that request with one to
    three of its fields (at any depth) set to random values: a valid base reaches the
    deep paths (a hint drawn from a library, a test run) that wholly random messages
    almost never do."""
    if seed is None:
        return messages(descriptor)
    return st.one_of(messages(descriptor), _mutant(seed))


def call(channel: grpc.Channel, method: MethodDescriptor, request: Message, timeout_s: float) -> grpc.StatusCode:
    """Call the method (unary or server-streaming, reading the whole stream) and return its
    status; raises AssertionError for a status that tells the caller nothing."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_class = GetMessageClass(method.output_type)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, request_serializer=type(request).SerializeToString,
                                          response_deserializer=response_class.FromString)
            for _ in stream(request, timeout=timeout_s):
                pass
        else:
            unary = channel.unary_unary(path, request_serializer=type(request).SerializeToString,
                                        response_deserializer=response_class.FromString)
            unary(request, timeout=timeout_s)
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        details = error.details() or ""  # type: ignore[attr-defined]
        # A wait the request itself asked for (timeout_s) may end in DEADLINE_EXCEEDED from
        # the service, with its message; grpc's own "Deadline Exceeded" is ours: a hang.
        told_deadline = code == grpc.StatusCode.DEADLINE_EXCEEDED and details != "Deadline Exceeded"
        assert code in TOLD or told_deadline, f"{method.name} answered {code.name}: {details!r} to {request!r}"
        assert details.strip(), f"{method.name} answered {code.name} without saying why, to {request!r}"
        return code
    return grpc.StatusCode.OK
