"""Redis stream messages in and out of ``mlrepro stream``, and the atomic write-and-ack.

An input message is either one field ``record`` holding a JSON object, or flat fields (one
per column, values as text; an empty value is a missing value, like an empty CSV cell).
Each output message carries ``input_id`` (the input message's id), ``model_fingerprint``,
the id columns sent, ``prediction`` and, for classifiers, ``proba_<class>``. A dead letter
carries ``input_id``, ``reason`` and the original ``message`` as JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from mlrepro.guards import safejson

RECORD_FIELD = "record"

# Writes one batch's results and acknowledges their inputs in one atomic step. An input
# that is no longer pending in the group was already handled (by this consumer before a
# crash, or by another that claimed it): it gets nothing, so each input id ends with
# exactly one output or dead letter.
#   KEYS: input, output, dead letters; ARGV: group, then per result:
#   input id, 0 (output) or 1 (dead letter), number of field pairs, fields...
#   Returns 1 (written) or 0 (already handled) per result.
WRITE_AND_ACK = """
local group = ARGV[1]
local i = 2
local written = {}
while i <= #ARGV do
  local id, target, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if #redis.call('XPENDING', KEYS[1], group, id, id, 1) > 0 then
    local fields = {}
    for j = 1, 2 * n do fields[j] = ARGV[i + 2 + j] end
    redis.call('XADD', target == '1' and KEYS[3] or KEYS[2], '*', unpack(fields))
    redis.call('XACK', KEYS[1], group, id)
    written[#written + 1] = 1
  else
    written[#written + 1] = 0
  end
  i = i + 3 + 2 * n
end
return written
"""


@dataclass
class Outcome:
    """What becomes of one input message: an output or a dead letter."""

    id: str
    dead: bool
    fields: dict[str, str]


def text(value: Any) -> str:
    """A field value: numbers round-trip exactly, None is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def decode(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The record a message holds; ValueError says why there is none."""
    try:
        items = {k.decode("utf-8"): v.decode("utf-8") for k, v in fields.items()}
    except UnicodeDecodeError:
        raise ValueError("the message is not UTF-8 text") from None
    if RECORD_FIELD in items:
        try:
            record = safejson.loads(items[RECORD_FIELD])  # depth-checked: no RecursionError
        except safejson.TooDeep as exc:
            raise ValueError(f"field '{RECORD_FIELD}' is {exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"field '{RECORD_FIELD}' is not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"field '{RECORD_FIELD}' must hold a JSON object")
        return record
    return {k: (None if v == "" else v) for k, v in items.items()}


def original(fields: dict[bytes, bytes]) -> str:
    """The message as JSON text, for a dead letter (undecodable bytes replaced)."""
    decoded = {
        k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in fields.items()
    }
    return json.dumps(decoded, ensure_ascii=False, sort_keys=True)


def output(msg_id: str, fingerprint: str, row: dict[str, Any]) -> Outcome:
    fields = {"input_id": msg_id, "model_fingerprint": fingerprint}
    fields.update({k: text(v) for k, v in row.items()})
    return Outcome(msg_id, False, fields)


def dead_letter(msg_id: str, fingerprint: str, reason: str, raw: dict[bytes, bytes]) -> Outcome:
    fields = {
        "input_id": msg_id,
        "reason": reason,
        "model_fingerprint": fingerprint,
        "message": original(raw),
    }
    return Outcome(msg_id, True, fields)


def script_args(group: str, outcomes: list[Outcome]) -> list[str]:
    args = [group]
    for o in outcomes:
        args += [o.id, "1" if o.dead else "0", str(len(o.fields))]
        for k, v in o.fields.items():
            args += [k, v]
    return args
