"""Who may call a START service: mutual TLS and a bearer token, the same for every process.

Every server port is opened by services/common/runtime.py and every client channel is made
by services/common/channels.py; both ask `load_auth()` here, which reads `AuthSettings`
(START_TLS_* and START_AUTH_TOKEN*) once per server or channel. So the services, the
workers, the orchestrator's Solve, `startctl` and the benches all authenticate the same way,
with nothing to configure per caller.

- **mTLS** (START_TLS_CERT_FILE, START_TLS_KEY_FILE, START_TLS_CA_FILE): a server presents its
  certificate and requires one from the client, signed by the CA; a client verifies the
  server by the same CA and presents the same certificate. One identity per pod, used both
  ways (the chart's certificate carries both usages). A caller without a certificate the CA
  signed never completes the handshake: it sees UNAVAILABLE with the SSL reason, which is how
  TLS fails; there is no gRPC status to send before a connection exists.
- **Bearer token** (START_AUTH_TOKEN or START_AUTH_TOKEN_FILE): clients send
  `authorization: Bearer <token>` on every call; servers compare it in constant time and
  answer UNAUTHENTICATED, saying what to send, when it is missing or wrong. gRPC sends call
  credentials only over a secure channel, and a token in plaintext is readable by anyone on
  the path, so a token without TLS is refused at start.
- **Health stays open**: grpc.health.v1 needs no token (it tells only SERVING or not, and
  kubelet and load balancers cannot send one). kubelet's grpc probe cannot do TLS either, so
  a server can also serve health alone on a plaintext port (`health_port`), which the chart's
  probes use; that port serves nothing else.

All empty, the default: plaintext and no token, as the laptop stack on loopback runs. A half
configuration (a certificate without its key, no CA, two tokens, an unreadable file) is an
`AuthConfigError` naming the variable to fix: servers stop at start with it.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import Counter
from pydantic import ValidationError

from services.common.logs import get_logger
from services.common.settings import AuthSettings

log = get_logger("auth")

CERT_ENV = "START_TLS_CERT_FILE"
KEY_ENV = "START_TLS_KEY_FILE"
CA_ENV = "START_TLS_CA_FILE"
SERVER_NAME_ENV = "START_TLS_SERVER_NAME"
TOKEN_ENV = "START_AUTH_TOKEN"
TOKEN_FILE_ENV = "START_AUTH_TOKEN_FILE"

# Reachable without a token: kubelet's probes and load balancers cannot send one, and the
# answer (SERVING or not) gives nothing away.
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})

# A token travels as an HTTP/2 header value: printable ASCII, no spaces.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")

UNAUTHENTICATED_TOTAL = Counter(
    "start_grpc_unauthenticated_total", "gRPC calls refused for a missing or wrong bearer token", ["method"]
)


class AuthConfigError(ValueError):
    """A half or broken authentication configuration; the message names the variable to fix."""


@dataclass(frozen=True)
class Auth:
    """What one process presents and requires, read from its files."""

    cert: bytes = b""
    key: bytes = b""
    ca: bytes = b""
    server_name: str = ""
    token: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.cert)

    def server_credentials(self) -> grpc.ServerCredentials:
        """TLS that requires a client certificate signed by the CA (mutual TLS)."""
        return grpc.ssl_server_credentials([(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """TLS that verifies the server by the CA and presents this process' certificate, plus the token."""
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )
        if self.token:
            # Sends `authorization: Bearer <token>` on every call of the channel.
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.access_token_call_credentials(self.token)
            )
        return credentials

    def client_options(self) -> list[tuple[str, Any]]:
        """Channel arguments: the name to check in the server's certificate, when set."""
        if self.tls and self.server_name:
            return [("grpc.ssl_target_name_override", self.server_name)]
        return []

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [BearerTokenCheck(self.token)] if self.token else []


def _read(path: str, variable: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise AuthConfigError(f"{variable}={path}: cannot read it ({exc.strerror or exc})") from exc


def _read_pem(path: str, variable: str) -> bytes:
    content = _read(path, variable)
    if b"-----BEGIN " not in content:
        raise AuthConfigError(f"{variable}={path}: not a PEM file (no '-----BEGIN' line)")
    return content


def load_auth(settings: AuthSettings | None = None) -> Auth:
    """This process' authentication from the environment; AuthConfigError when half set."""
    if settings is None:
        try:
            settings = AuthSettings()
        except ValidationError as exc:
            raise AuthConfigError(str(exc)) from exc
    s = settings
    tls_set = {CERT_ENV: s.tls_cert_file, KEY_ENV: s.tls_key_file, CA_ENV: s.tls_ca_file}
    given = [name for name, value in tls_set.items() if value]
    missing = [name for name, value in tls_set.items() if not value]
    if given and missing:
        raise AuthConfigError(
            f"{', '.join(missing)} not set while {', '.join(given)} is: mutual TLS needs all three "
            f"({CERT_ENV} and {KEY_ENV}, this process' certificate and key; {CA_ENV}, the CA that signed "
            "every peer's certificate), or none of them for plaintext"
        )
    auth: dict[str, Any] = {}
    if given:
        auth = {
            "cert": _read_pem(s.tls_cert_file, CERT_ENV),
            "key": _read_pem(s.tls_key_file, KEY_ENV),
            "ca": _read_pem(s.tls_ca_file, CA_ENV),
            "server_name": s.tls_server_name.strip(),
        }
    elif s.tls_server_name:
        raise AuthConfigError(f"{SERVER_NAME_ENV} is set but TLS is off: set {CERT_ENV}, {KEY_ENV} and {CA_ENV}")
    token = s.auth_token.get_secret_value()
    if token and s.auth_token_file:
        raise AuthConfigError(f"set {TOKEN_ENV} or {TOKEN_FILE_ENV}, not both")
    source = TOKEN_ENV
    if s.auth_token_file:
        source = TOKEN_FILE_ENV
        token = _read(s.auth_token_file, TOKEN_FILE_ENV).decode("utf-8", "replace")
        if not token.strip():
            raise AuthConfigError(f"{TOKEN_FILE_ENV}={s.auth_token_file}: the file is empty")
    # A trailing newline (echo > file, a Secret made from a file) is not part of the token.
    token = token.strip()
    if token:
        if not _TOKEN_CHARS.fullmatch(token):
            raise AuthConfigError(f"{source}: the token must be printable ASCII without spaces")
        if not given:
            raise AuthConfigError(
                f"{source} is set but TLS is off: a bearer token in plaintext is readable by anyone on the path "
                f"(and gRPC sends call credentials only over TLS); set {CERT_ENV}, {KEY_ENV} and {CA_ENV} too"
            )
        auth["token"] = token
    return Auth(**auth)


MISSING_TOKEN = (
    f"missing bearer token: send metadata 'authorization: Bearer <token>' "
    f"(START clients do when {TOKEN_ENV} or {TOKEN_FILE_ENV} is set to the server's token)"
)
NOT_BEARER = "the authorization metadata is not 'Bearer <token>': send 'authorization: Bearer <token>'"
WRONG_TOKEN = (
    f"bearer token not accepted: it is not this server's token; set the caller's {TOKEN_ENV} "
    f"(or {TOKEN_FILE_ENV}) to the token the server was given"
)


class BearerTokenCheck(grpc.aio.ServerInterceptor):
    """Refuses, UNAUTHENTICATED, every call but health without this server's bearer token."""

    def __init__(self, token: str) -> None:
        self._expected = token.encode()

    def problem(self, metadata: Any) -> str | None:
        """Why the call's metadata does not authenticate it, or None when it does."""
        values = [value for key, value in (metadata or ()) if key == "authorization"]
        if not values:
            return MISSING_TOKEN
        scheme, _, presented = str(values[0]).partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return NOT_BEARER
        # Constant time: how long the comparison takes says nothing about the token.
        if not hmac.compare_digest(presented.strip().encode(), self._expected):
            return WRONG_TOKEN
        return None

    async def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in OPEN_METHODS:
            return handler
        problem = self.problem(handler_call_details.invocation_metadata)
        if problem is None:
            return handler
        UNAUTHENTICATED_TOTAL.labels(method).inc()
        log.warning("call refused", method=method, reason=problem.partition(":")[0])
        return _refusing(handler, problem)


def _refusing(handler: grpc.RpcMethodHandler, problem: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that answers UNAUTHENTICATED with `problem`."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)

    kinds = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    for kind, make in kinds.items():
        if getattr(handler, kind) is not None:
            return make(
                refuse,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler
