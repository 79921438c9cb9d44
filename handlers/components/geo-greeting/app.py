"""The guide's geo greeting as a Spin SDK (Python) HTTP component.

Reads the edge's ``cf-ipcountry`` header and greets in the visitor's language:
KR -> 안녕하세요, JP -> こんにちは, anything else -> Hello.
"""

from spin_sdk import http
from spin_sdk.http import Request, Response

GREETINGS = {"KR": "안녕하세요", "JP": "こんにちは"}


class IncomingHandler(http.IncomingHandler):
    def handle_request(self, request: Request) -> Response:
        country = request.headers.get("cf-ipcountry", "").upper()
        greeting = GREETINGS.get(country, "Hello")
        body = f"{greeting} from {request.method} {request.uri}\n".encode()
        return Response(
            200,
            {"content-type": "text/plain; charset=utf-8", "x-country": country or "unknown"},
            body,
        )
