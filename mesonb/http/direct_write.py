"""Writing on a tornado ``IOStream`` without the Future tornado makes for every write.

``IOStream.write`` makes a Future per call, with a done callback, queues it, and resolves
it once the bytes are in the kernel: one more loop callback each time. The master's two
streams that carry a message per call (a framework's event stream, an agent's WebSocket)
write once per loop turn and never wait on those Futures. :func:`write_now` hands the
bytes to the socket itself when nothing waits in the stream's buffer (the usual case: the
kernel takes them whole), and what the socket does not take, or everything when the
stream is TLS or still has bytes waiting, goes through ``IOStream.write`` as before: the
same bytes, in the same order, and tornado meets (and reports) a socket error itself.
"""

from __future__ import annotations

from tornado.iostream import IOStream


def write_now(stream: IOStream, data: bytes) -> bool:
    """Write ``data`` (not empty) on ``stream``; False when the stream is closed (nothing
    written, as ``IOStream.write`` would refuse it)."""
    if stream.closed():
        return False
    # (type, not isinstance: an SSLIOStream's socket must not be written around its state)
    if type(stream) is IOStream and not stream._write_buffer and not stream._connecting:
        try:
            sent = stream.socket.send(data)
        except OSError:  # BlockingIOError: the kernel's buffer is full; else an error
            sent = 0  # that IOStream.write meets again, and handles as it always does
        if sent == len(data):
            return True
        data = memoryview(data)[sent:]  # type: ignore[assignment]
    stream.write(data)
    return True
