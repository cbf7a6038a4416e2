"""The exceptions of the gsd package.

Every error the daemon answers is ``[code, detail]``: it is raised as the
subclass of :class:`ServerError` registered for ``code`` (``noproc`` →
:class:`NoProc`, ...), or as :class:`ServerError` itself for a code this
package does not know (the contract says a client must accept those).
Every exception carries ``code`` (str) and ``detail`` (any msgpack value).
"""

from __future__ import annotations

from typing import Any, Dict, Type

__all__ = [
    "GsdError", "ServerError", "ConnectionLost",
    "BadArg", "UnknownMethod", "NoProc", "Timeout", "Exit", "AlreadyStarted",
    "InitStop", "Ignore", "ModuleError", "CodeChange", "Unsupported",
    "Unauthorized", "TooLarge", "ProtocolError", "ShuttingDown", "Overloaded",
    "NodeDown", "ERRORS", "error_for",
]


class GsdError(Exception):
    """Anything that went wrong talking to gsd: ``code`` and ``detail``."""

    code: str = "error"

    def __init__(self, code: str, detail: Any = None) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        if self.detail is None:
            return self.code
        return "%s: %s" % (self.code, self.detail)


class ServerError(GsdError):
    """The daemon answered an error: ``code`` (``"noproc"``, ...) and ``detail``.

    Raised as such for codes without a class of their own.
    """


class ConnectionLost(GsdError):
    """The connection could not be made, or broke (code ``"connection"``).

    A connection that raised it cannot be used any more; ``detail`` says
    why (for a connection the daemon closed after an ``error``
    notification, that notification's code and detail).
    """


class BadArg(ServerError):
    """The daemon could not make sense of the request (code ``badarg``)."""


class UnknownMethod(ServerError):
    """The daemon does not know the method (code ``unknown_method``)."""


class NoProc(ServerError):
    """No such server (code ``noproc``)."""


class Timeout(ServerError):
    """The call (or ``init``, or ``stop``) ran out of time (code ``timeout``).

    Also raised by the client itself when it waited longer than it was
    allowed for an answer or an event; the connection stays usable and a
    late answer is discarded.
    """


class Exit(ServerError):
    """The server stopped while the call waited; ``detail`` is its reason."""


class AlreadyStarted(ServerError):
    """The name is taken; ``detail`` is the id of the server holding it."""


class InitStop(ServerError):
    """The module's ``init`` stopped; ``detail`` is its reason (code ``init_stop``)."""


class Ignore(ServerError):
    """The module's ``init`` answered ignore: no server (code ``ignore``)."""


class ModuleError(ServerError):
    """The module could not be found or loaded (code ``module``)."""


class CodeChange(ServerError):
    """A reload's ``code_change`` failed; ``detail``: the server and its reason."""


class Unsupported(ServerError):
    """The module does not support that (code ``unsupported``)."""


class Unauthorized(ServerError):
    """This user may not do that (code ``unauthorized``)."""


class TooLarge(ServerError):
    """Over a limit: message size, monitors per connection... (code ``too_large``)."""


class ProtocolError(ServerError):
    """The daemon could not read what was sent (code ``protocol``)."""


class ShuttingDown(ServerError):
    """The daemon is shutting down (code ``shutting_down``)."""


class Overloaded(ServerError):
    """The daemon is protecting itself; try again later (code ``overloaded``)."""


class NodeDown(ServerError):
    """A remote reference's node cannot be reached (code ``nodedown``)."""


ERRORS: Dict[str, Type[ServerError]] = {
    "badarg": BadArg,
    "unknown_method": UnknownMethod,
    "noproc": NoProc,
    "timeout": Timeout,
    "exit": Exit,
    "already_started": AlreadyStarted,
    "init_stop": InitStop,
    "ignore": Ignore,
    "module": ModuleError,
    "code_change": CodeChange,
    "unsupported": Unsupported,
    "unauthorized": Unauthorized,
    "too_large": TooLarge,
    "protocol": ProtocolError,
    "shutting_down": ShuttingDown,
    "overloaded": Overloaded,
    "nodedown": NodeDown,
}
"""The exception class for each error code of the contract."""


def error_for(code: Any, detail: Any = None) -> ServerError:
    """The exception for an error the daemon answered (``[code, detail]``)."""
    if isinstance(code, bytes):
        code = code.decode("utf-8", "replace")
    if not isinstance(code, str):
        code = str(code)
    return ERRORS.get(code, ServerError)(code, detail)
