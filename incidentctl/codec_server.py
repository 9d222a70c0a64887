"""`incidentctl codec serve`: the codec server the Temporal UI (and `temporal` CLI) call to show encrypted
payloads in clear to people allowed to see them: POST /decode and /encode with protobuf-JSON `Payloads`.

It binds to 127.0.0.1 by default; give `--token` (or INCIDENTCTL_CODEC_TOKEN) to require
`Authorization: Bearer <token>` when it listens wider, and `--origin` for the UI's origin (CORS).
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from incidentctl.intake.auth import bearer_token
from incidentctl.payload_codec import CodecKeyError, EncryptionCodec


def create_codec_app(codec: EncryptionCodec, *, token: str | None = None, origin: str | None = None
                     ) -> web.Application:
    def cors(response: web.StreamResponse) -> web.StreamResponse:
        if origin:
            response.headers.update({"Access-Control-Allow-Origin": origin,
                                     "Access-Control-Allow-Methods": "POST, OPTIONS",
                                     "Access-Control-Allow-Headers": "Content-Type, Authorization, X-Namespace",
                                     "Access-Control-Allow-Credentials": "true"})
        return response

    def refused(status: int, reason: str) -> web.StreamResponse:
        return cors(web.json_response({"error": reason}, status=status))

    def handler(encode: bool) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            if token:
                given = bearer_token(request)
                if not given or not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode()):
                    return refused(401, "Authorization: Bearer <codec token> required")
            try:
                payloads = json_format.Parse(await request.text(), Payloads())
            except json_format.ParseError as exc:
                return refused(400, f"body must be protobuf-JSON Payloads: {exc}")
            try:
                converted = await (codec.encode if encode else codec.decode)(list(payloads.payloads))
            except CodecKeyError as exc:
                return refused(422, str(exc))
            body = json_format.MessageToJson(Payloads(payloads=converted))
            return cors(web.Response(text=body, content_type="application/json"))
        return handle

    async def preflight(_: web.Request) -> web.StreamResponse:
        return cors(web.Response(status=204))

    app = web.Application(client_max_size=8 << 20)
    for path, encode in (("/encode", True), ("/decode", False)):
        app.router.add_post(path, handler(encode))
        app.router.add_route("OPTIONS", path, preflight)
    return app
