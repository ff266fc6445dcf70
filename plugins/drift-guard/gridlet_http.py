"""A small synchronous HTTP client over wasi:http/outgoing-handler, for
plugins that send one request per event. (componentize-py's `poll_loop`
offers an asyncio client; a handler that makes one call needs no loop.)"""

from urllib.parse import urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler, wasi_http_types as http


class HttpError(Exception):
    """The request could not be sent or answered (denied, unreachable, timeout)."""


def post_json(url: str, body: bytes) -> int:
    """POST `body` as JSON to `url`; the response status."""
    return send("POST", url, [("content-type", b"application/json")], body)


def send(method: str, url: str, headers: list[tuple[str, bytes]], body: bytes) -> int:
    """Send one request and wait for the response's status. The response
    body is read and discarded, so the connection is released."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HttpError(f"not an http(s) URL: {url}")
    request = http.OutgoingRequest(http.Fields.from_list(headers))
    request.set_method(http.Method_Post() if method == "POST" else http.Method_Other(method))
    request.set_scheme(http.Scheme_Https() if parts.scheme == "https" else http.Scheme_Http())
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))

    outgoing = request.body()
    # Send first, then write: the host holds only a few writes of a body
    # that is not on its way, so writing a larger one first would wait
    # forever.
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise HttpError(str(e.value))
    with outgoing.write() as stream:
        # blocking-write-and-flush takes at most 4096 bytes at a time.
        for start in range(0, len(body), 4096):
            try:
                stream.blocking_write_and_flush(body[start : start + 4096])
            except Err as e:
                raise HttpError(f"writing the body: {e.value}")
    http.OutgoingBody.finish(outgoing, None)

    with future.subscribe() as ready:
        ready.block()
    answer = future.get()
    if answer is None or isinstance(answer, Err):
        raise HttpError("no response")
    if isinstance(answer.value, Err):
        raise HttpError(type(answer.value.value).__name__.removeprefix("ErrorCode_"))
    response = answer.value.value
    status = response.status()
    with response.consume() as incoming:
        with incoming.stream() as stream:
            while True:
                try:
                    stream.blocking_read(65536)
                except Err:
                    break  # closed: the whole body was read
    return status
