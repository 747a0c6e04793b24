"""The math builder finds a line's first user message, last assistant message and tool use in
one pass over its messages (`nemotron._roles`): equal to the role lists and `is_tool_row`, on
messages of every shape (not objects, repeated roles, tool roles and calls in each form)."""

from __future__ import annotations

import json

from distill_data.builders import nemotron

MESSAGES = [{"role": "user", "content": " 2+2? "}, {"role": "assistant", "content": "4", "reasoning_content": "add"}]
LINES = [
    json.dumps({"uuid": "a", "messages": MESSAGES}).encode(),
    json.dumps({"uuid": "a", "messages": MESSAGES}, ensure_ascii=False).encode() + b"\r\n",
    b'{"uuid": "b", "x": NaN, "messages": %s}' % json.dumps(MESSAGES).encode(),
    b'{"uuid": "c", "n": 123456789012345678901234567890, "messages": []}',
    b'{"uuid": "\\ud800", "messages": %s}' % json.dumps(MESSAGES).encode(),
    b"\xef\xbb\xbf" + json.dumps({"messages": MESSAGES}).encode(),
    json.dumps({"messages": MESSAGES}).encode("utf-16"),
    b'{"a": 1, "a": 2, "messages": %s}' % json.dumps(MESSAGES).encode(),
    b"[" * 2000 + b"]" * 2000,
    b'{"messages": [1, {"role": "tool"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
    b'{"tools": "[]", "messages": [{"role": "user", "content": "q", "tool_calls": []}, {"role": "assistant", "content": "a", "tool_calls": "{}"}]}',
    b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "tool_calls": [{"f": 1}]}]}',
    b'{"messages": [{"role": "user", "content": ""}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": " "}]}',
    b'{"messages": "no list"}', b"17", b'"text"', b"null", b"{bad", b"\xff\xfe{}", b"  \t", b'{"x": 1e400}',
    b'{"x": 1.7976931348623157e308, "y": -0.0, "messages": []}',
    b'{"n": [-99999999999999999999, 18446744073709551615, 9223372036854775808, 1.00000000000000000001], "messages": []}',
]



def test_one_pass_over_messages_equals_the_role_lists():
    for raw in LINES:
        obj = nemotron.parse_line(raw)
        if not isinstance(obj, dict):
            continue
        users = nemotron.messages_with_role(obj, "user")
        assistants = nemotron.messages_with_role(obj, "assistant")
        user, last, tool = nemotron._roles(obj)
        assert user is (users[0] if users else None)
        assert last is (assistants[-1] if assistants else None)
        assert (tool or nemotron.has_tools(obj.get("tools"))) == nemotron.is_tool_row(obj)
