#!/usr/bin/env python3
"""The official openai and anthropic SDKs as clients of faregate's LLM route.

crates/faregate/tests/llm_sdk.rs runs one scenario per call, against a
gateway in front of the provider double, and asserts on what this prints:
one JSON object holding the request the SDK was given, what the SDK parsed
through the gateway, and what the same SDK parsed from the same request
sent straight to the double (which answers deterministically). Nothing is
judged here; the Rust test compares and checks the ledger.

Parsed objects are dumped with `exclude_unset=True`, so a member the wire
did not carry (a `usage` the client never asked for) stays absent.

    python sdk.py --gateway http://127.0.0.1:P --double http://127.0.0.1:Q \
        --key fg_live_... --double-key sk-double --scenario chat
"""

import argparse
import json
import sys
import urllib.request

import anthropic
import openai

# How many chunks the disconnect scenario reads before closing its stream.
READ_BEFORE_CLOSE = 4


def dump(obj):
    """A parsed SDK object as JSON, members the wire did not carry left out."""
    return obj.model_dump(mode="json", exclude_unset=True)


class Sides:
    """One client of each SDK on each side: through faregate, and direct."""

    def __init__(self, args):
        self.args = args

    def openai(self, side, key=None):
        url, own = self._where(side)
        # No retries: a refusal must reach the caller as the first answer.
        return openai.OpenAI(base_url=f"{url}/v1", api_key=key or own, max_retries=0, timeout=30)

    def anthropic(self, side, **kw):
        url, key = self._where(side)
        # The SDK appends /v1/messages to its base URL itself.
        kw.setdefault("api_key", key)
        return anthropic.Anthropic(base_url=url, max_retries=0, timeout=30, **kw)

    def _where(self, side):
        a = self.args
        return (a.gateway, a.key) if side == "gateway" else (a.double, a.double_key)

    def double_stats(self):
        with urllib.request.urlopen(f"{self.args.double}/_double/stats", timeout=10) as r:
            return json.load(r)


def user(text):
    return [{"role": "user", "content": text}]


def chat(s):
    req = dict(model="test-model", messages=user("Hello there, SDK!"), max_tokens=50)
    raw = s.openai("gateway").chat.completions.with_raw_response.create(**req)
    return {
        "request": req,
        "cost_header": raw.headers.get("faregate-cost"),
        "gateway": dump(raw.parse()),
        "direct": dump(s.openai("direct").chat.completions.create(**req)),
    }


def chat_chunks(client, req):
    with client.chat.completions.create(**req) as stream:
        return [dump(chunk) for chunk in stream]


def stream_plain(s):
    req = dict(model="test-model", messages=user("Stream me a few words"), max_tokens=40, stream=True)
    with_usage = dict(req, stream_options={"include_usage": True})
    return {
        "request": req,
        "gateway": chat_chunks(s.openai("gateway"), req),
        "direct": chat_chunks(s.openai("direct"), req),
        # The bill's truth: the same call, straight to the provider, with usage.
        "direct_usage": chat_chunks(s.openai("direct"), with_usage)[-1]["usage"],
    }


def stream_usage(s):
    req = dict(
        model="test-model",
        messages=user("Count with me"),
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
        prompt_cache_key="k1",
    )
    return {
        "request": req,
        "gateway": chat_chunks(s.openai("gateway"), req),
        "direct": chat_chunks(s.openai("direct"), req),
    }


def embeddings(s):
    # No encoding_format: the SDK asks for base64 and decodes it itself.
    req = dict(model="test-model", input=["one two three", "four five"])
    gateway = dump(s.openai("gateway").embeddings.create(**req))
    sent = s.double_stats()["last_body"]
    return {
        "request": req,
        "sent_encoding_format": sent.get("encoding_format"),
        "gateway": gateway,
        "direct": dump(s.openai("direct").embeddings.create(**req)),
    }


def refusal(call):
    """What the SDK raised: its class, status, code, message, body and
    retry-after."""
    try:
        call()
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
        return {
            "error": type(e).__name__,
            "status": e.status_code,
            # openai reads `code` from the body's `error` object, or the body.
            "code": getattr(e, "code", None),
            "message": e.message,
            "body": e.body,
            "retry_after": e.response.headers.get("retry-after"),
        }
    return {"error": None}


def errors(s):
    """A provider's refusal, through faregate and straight from the double
    (the catalog maps each public model to a `fail-NNN` provider model)."""
    req = dict(messages=user("anyone there?"), max_tokens=10)

    def call(kind, side, model):
        if kind == "openai":
            return s.openai(side).chat.completions.create(model=model, **req)
        return s.anthropic(side).messages.create(model=model, **req)

    cases = [
        ("openai", "broken-model", "fail-500"),
        ("openai", "limited-model", "fail-429"),
        ("anthropic", "claude-overloaded", "fail-529"),
    ]
    return {
        "cases": [
            {
                "request": dict(req, model=public),
                "gateway": refusal(lambda: call(kind, "gateway", public)),
                "direct": refusal(lambda: call(kind, "direct", provider)),
            }
            for kind, public, provider in cases
        ]
    }


def refusals(s):
    """faregate's own refusals (a key short of money, an unknown model, a
    wrong key), as each SDK raises them."""
    req = dict(messages=user("hi"), max_tokens=10)
    wrong = {"Authorization": anthropic.Omit(), "X-Api-Key": "fg_live_nope"}
    return {
        "openai_402": refusal(lambda: s.openai("gateway").chat.completions.create(model="test-model", **req)),
        "openai_404": refusal(lambda: s.openai("gateway").chat.completions.create(model="no-such-model", **req)),
        "openai_401": refusal(lambda: s.openai("gateway", "fg_live_nope").chat.completions.create(model="test-model", **req)),
        "anthropic_402": refusal(lambda: s.anthropic("gateway").messages.create(model="claude-test", **req)),
        "anthropic_401": refusal(lambda: s.anthropic("gateway", default_headers=wrong).messages.create(model="claude-test", **req)),
    }


def first_chunks(client, req):
    """Reads a few chunks of a stream, then closes it (the caller leaves)."""
    stream = client.chat.completions.create(**req)
    chunks = []
    for chunk in stream:
        chunks.append(dump(chunk))
        if len(chunks) == READ_BEFORE_CLOSE:
            break
    stream.close()
    return chunks


def disconnect(s):
    req = dict(model="slow-model", messages=user("a long answer please"), max_tokens=200, stream=True)
    return {
        "request": req,
        "gateway": first_chunks(s.openai("gateway"), req),
        "direct": first_chunks(s.openai("direct"), dict(req, model="double-slow")),
    }


def responses_stream(client, req):
    with client.responses.stream(**req) as stream:
        events = [dump(event) for event in stream]
        return {"events": events, "final": dump(stream.get_final_response())}


def responses(s):
    req = dict(model="test-model", input="Write a line about gateways", max_output_tokens=100)
    gw, direct = s.openai("gateway"), s.openai("direct")
    return {
        "request": req,
        "gateway": {"whole": dump(gw.responses.create(**req)), "stream": responses_stream(gw, req)},
        "direct": {"whole": dump(direct.responses.create(**req)), "stream": responses_stream(direct, req)},
    }


def messages_both(client, req):
    whole = dump(client.messages.create(**req))
    with client.messages.stream(**req) as stream:
        text = "".join(stream.text_stream)
        final = dump(stream.get_final_message())
    return {"whole": whole, "text": text, "final": final}


def messages(s):
    # A cached system block, so the bill has cache reads to price.
    system = [{"type": "text", "text": "You answer briefly.", "cache_control": {"type": "ephemeral"}}]
    req = dict(model="claude-test", max_tokens=30, system=system, messages=user("Hi Claude"))
    # The key as X-Api-Key, the header Anthropic documents (this SDK sends
    # its api_key as Authorization: Bearer).
    only_x_api_key = {"Authorization": anthropic.Omit(), "X-Api-Key": s.args.key}
    by_header = s.anthropic("gateway", default_headers=only_x_api_key)
    return {
        "request": req,
        "gateway": messages_both(s.anthropic("gateway"), req),
        "gateway_x_api_key": dump(by_header.messages.create(**req)),
        "direct": messages_both(s.anthropic("direct"), req),
    }


SCENARIOS = {
    f.__name__: f
    for f in (chat, stream_plain, stream_usage, embeddings, errors, refusals, disconnect, responses, messages)
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gateway", required=True, help="faregate's base URL (http://host:port)")
    p.add_argument("--double", required=True, help="the provider double's base URL")
    p.add_argument("--key", required=True, help="the faregate API key")
    p.add_argument("--double-key", required=True, help="the double's own key")
    p.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    args = p.parse_args()
    json.dump(SCENARIOS[args.scenario](Sides(args)), sys.stdout)
    print()


if __name__ == "__main__":
    main()
