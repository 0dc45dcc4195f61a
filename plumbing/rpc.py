"""RPC between services, always bounded in time.

nameko's own ``RpcProxy`` waits for a reply forever; :class:`ServiceRpc`
gives up after ``RPC_TIMEOUT`` seconds (or the timeout given) with
:class:`ServiceTimeout`, reports a service with no running instance as
:class:`ServiceUnavailable`, and turns a remote :class:`PlatformError` back
into the same error so callers can handle it by code.

A process makes its calls through one connection of its own
(:class:`RpcClient`) and publishes its replies on long-lived producers
(:class:`ProducerPool`), rather than through nameko's ``Publisher``, which
builds a kombu ``Connection`` and borrows a pooled producer for every
message: at a few hundred calls a second that bookkeeping cost more CPU
than the AMQP work itself.
"""

from __future__ import annotations

import inspect
import sys
import time
import uuid
from typing import Any

import eventlet
import eventlet.event
import eventlet.semaphore
import structlog
from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu import Connection, Consumer, Producer, Queue
from kombu.exceptions import ChannelError, OperationalError
from kombu.serialization import dumps, registry
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    DEFAULT_TRANSPORT_OPTIONS,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.exceptions import (
    IncorrectSignature,
    RemoteError,
    UnserializableValueError,
    deserialize,
    serialize,
)
from nameko.extensions import DependencyProvider, SharedExtension
from nameko.messaging import HeaderEncoder
from nameko.rpc import (
    RPC_REPLY_QUEUE_TEMPLATE,
    Responder,
    RpcConsumer,
    get_rpc_exchange,
)
from nameko.rpc import Rpc as NamekoRpc

from plumbing import config
from plumbing.errors import ServiceTimeout, ServiceUnavailable, from_remote
from plumbing.identity import CONTEXT_KEY, service_identity

_log = structlog.get_logger()

# A connection that fails while a message goes out is dropped and the
# message sent once more on a fresh one: a broker restart or an idle
# connection closed by the broker costs one retry, not an error.
_CONNECTION_ERRORS = (OperationalError, OSError, AmqpConnectionError)


class UnroutableMessage(Exception):
    """A mandatory message no queue was bound to receive."""


class _Slot:
    __slots__ = ("connection", "producer")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.producer = connection.Producer()

    def close(self) -> None:
        try:
            self.connection.release()
        except Exception:  # noqa: BLE001 (closing a broken connection)
            pass


class ProducerPool:
    """Producers on long-lived connections, each lent to one publish at a time.

    With ``confirms`` every publish waits for the broker's confirm, so a
    mandatory message no queue takes raises :class:`UnroutableMessage` (the
    broker returns it before it confirms). A slot whose publish failed in any
    way is closed rather than reused: its channel may still owe a confirm.
    """

    def __init__(
        self,
        amqp_uri: str,
        *,
        confirms: bool,
        ssl: Any = None,
        login_method: str | None = None,
    ) -> None:
        self.amqp_uri = amqp_uri
        self.confirms = confirms
        self.ssl = ssl
        self.login_method = login_method
        self._free: list[_Slot] = []

    def _open(self) -> _Slot:
        options = DEFAULT_TRANSPORT_OPTIONS.copy()
        options["confirm_publish"] = self.confirms
        return _Slot(
            Connection(
                self.amqp_uri,
                transport_options=options,
                ssl=self.ssl,
                login_method=self.login_method,
            )
        )

    def publish(self, body: Any, **options: Any) -> None:
        """Publish once; a broken connection is replaced and tried once more."""
        for attempt in (1, 2):
            slot = self._free.pop() if self._free else self._open()
            try:
                slot.producer.publish(body, retry=False, **options)
            except ChannelError as error:
                slot.close()
                if "NO_ROUTE" in str(error):
                    raise UnroutableMessage(str(error)) from None
                raise
            except _CONNECTION_ERRORS:
                slot.close()
                if attempt == 2:
                    raise
                continue
            except BaseException:
                # Interrupted mid-publish (a timeout, a kill): the channel's
                # state is unknown.
                slot.close()
                raise
            self._free.append(slot)
            return

    def close(self) -> None:
        while self._free:
            self._free.pop().close()


class _Publishers(SharedExtension):
    """The process's reply producers, shared by its RPC consumers."""

    def setup(self) -> None:
        cfg = self.container.config
        # Replies go to the caller's own reply queue: persisting them buys
        # nothing, and a lost reply already ends in the caller's timeout, so
        # they are sent without waiting for a publisher confirm.
        self.replies = ProducerPool(
            cfg[AMQP_URI_CONFIG_KEY],
            confirms=False,
            ssl=cfg.get(AMQP_SSL_CONFIG_KEY),
            login_method=cfg.get(LOGIN_METHOD_CONFIG_KEY),
        )

    def stop(self) -> None:
        self.replies.close()

    def kill(self) -> None:
        self.stop()


_UNROUTABLE = object()

# How long a call waits for the process's RPC connection to be (re)opened
# before it reports the broker unreachable.
READY_WAIT = 2.0


class RpcClient(SharedExtension):
    """The process's one connection for the RPCs it makes.

    Requests go out on it transient, with mandatory routing and without
    publisher confirms; replies come back on it, to the process's own
    exclusive reply queue, without acks. One green thread reads the
    connection: it hands each reply to the call waiting for it, and a request
    the broker returns (no queue bound: the service has no running instance)
    fails that call at once. A caller waits at most its timeout, so a
    request or reply lost with a broker restart ends as a timeout, as
    before; the connection is opened again after a failure.

    nameko's proxy instead published each request through a pooled producer
    on a fresh kombu ``Connection`` object, waited for a publisher confirm
    (its only way to notice an unknown service), and consumed replies with
    an ack and a new green thread per reply.
    """

    heartbeat = 60

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, eventlet.event.Event] = {}
        self._connection: Connection | None = None
        self._producer: Any = None
        self._ready = eventlet.event.Event()
        self._write = eventlet.semaphore.Semaphore(1)
        self._stopping = False
        self._thread: Any = None

    def setup(self) -> None:
        cfg = self.container.config
        self.amqp_uri = cfg[AMQP_URI_CONFIG_KEY]
        self.ssl = cfg.get(AMQP_SSL_CONFIG_KEY)
        self.login_method = cfg.get(LOGIN_METHOD_CONFIG_KEY)
        self.serializer = cfg.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER)
        self.exchange = get_rpc_exchange(cfg)
        self.routing_key = str(uuid.uuid4())
        self.queue = Queue(
            RPC_REPLY_QUEUE_TEMPLATE.format(
                self.container.service_name, self.routing_key
            ),
            exchange=self.exchange,
            routing_key=self.routing_key,
            exclusive=True,
            auto_delete=True,
        )

    def start(self) -> None:
        if self._thread is None:
            self._thread = self.container.spawn_managed_thread(self._run)

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.kill()
            self._thread = None
        self._close()

    def kill(self) -> None:
        self.stop()

    # The reading thread

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._open()
                connection = self._connection
                assert connection is not None
                interval = self.heartbeat / 4
                checked = time.monotonic()
                while not self._stopping:
                    try:
                        connection.drain_events(timeout=interval)
                    except TimeoutError:
                        pass
                    if time.monotonic() - checked >= interval:
                        # May send a heartbeat frame: one writer at a time.
                        with self._write:
                            connection.heartbeat_check()
                        checked = time.monotonic()
            except Exception as error:  # noqa: BLE001 (reconnect, whatever broke)
                self._close()
                if self._stopping:
                    return
                _log.warning("rpc_client_connection_lost", error=repr(error))
                eventlet.sleep(1.0)

    def _open(self) -> None:
        connection = Connection(
            self.amqp_uri,
            ssl=self.ssl,
            login_method=self.login_method,
            heartbeat=self.heartbeat,
            transport_options=DEFAULT_TRANSPORT_OPTIONS.copy(),
        )
        connection.ensure_connection(max_retries=1)
        channel = connection.channel()
        channel.events["basic_return"].add(self._on_return)
        consumer = Consumer(
            channel,
            queues=[self.queue],
            callbacks=[self._on_reply],
            no_ack=True,
            accept=[self.serializer, "json"],
        )
        consumer.consume()
        self._producer = Producer(channel)
        self._connection = connection
        self._ready.send(True)

    def _close(self) -> None:
        if self._ready.ready():
            self._ready = eventlet.event.Event()
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001 (closing a broken connection)
                pass

    def _on_reply(self, body: Any, message: Any) -> None:
        correlation_id = message.properties.get("correlation_id")
        event = self._pending.pop(correlation_id, None)
        if event is not None:
            event.send(body)

    def _on_return(self, _exc: Any, _exchange: Any, _key: Any, message: Any) -> None:
        event = self._pending.pop(message.properties.get("correlation_id"), None)
        if event is not None:
            event.send(_UNROUTABLE)

    # Calls

    def publish(
        self, routing_key: str, payload: Any, headers: dict[str, Any], wait: float
    ) -> tuple[str, eventlet.event.Event]:
        """Send one request; the event receives the reply body, or
        ``_UNROUTABLE``. Raises ServiceUnavailable without a broker."""
        ready = self._ready
        if not ready.ready():
            with eventlet.Timeout(wait, False):
                ready.wait()
        producer = self._producer
        if producer is None:
            raise ServiceUnavailable("The message broker is not reachable")
        correlation_id = str(uuid.uuid4())
        event = eventlet.event.Event()
        self._pending[correlation_id] = event
        try:
            with self._write:
                producer.publish(
                    payload,
                    exchange=self.exchange,
                    routing_key=routing_key,
                    serializer=self.serializer,
                    delivery_mode=1,
                    mandatory=True,
                    reply_to=self.routing_key,
                    correlation_id=correlation_id,
                    headers=headers,
                    retry=False,
                )
        except (*_CONNECTION_ERRORS, ChannelError):
            self._pending.pop(correlation_id, None)
            raise ServiceUnavailable("The message broker is not reachable") from None
        except BaseException:
            self._pending.pop(correlation_id, None)
            raise
        return correlation_id, event

    def forget(self, correlation_id: str) -> None:
        self._pending.pop(correlation_id, None)


class _TimedMethod(HeaderEncoder):
    def __init__(
        self, provider: ServiceRpc, worker_ctx: Any, name: str, timeout: float
    ) -> None:
        self._provider = provider
        self._worker_ctx = worker_ctx
        self._name = name
        self._timeout = timeout

    def _headers(self) -> dict[str, Any]:
        headers = self.get_message_headers(self._worker_ctx)
        identity = self._provider.service_identity
        if identity is not None:
            headers[self._get_header_name(CONTEXT_KEY)] = identity
        return headers

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        service = self._provider.target_service
        client = self._provider.client
        timeout = eventlet.Timeout(self._timeout)
        correlation_id = None
        try:
            correlation_id, event = client.publish(
                f"{service}.{self._name}",
                {"args": args, "kwargs": kwargs},
                self._headers(),
                # Short of the call's own timeout, so that a broker that is
                # away answers 503 (unavailable), not 504.
                wait=min(0.8 * self._timeout, READY_WAIT),
            )
            body = event.wait()
        except eventlet.Timeout as fired:
            if fired is not timeout:
                raise
            if correlation_id is not None:
                client.forget(correlation_id)
            raise ServiceTimeout(
                f"The {service} service did not answer {self._name} in time"
            ) from None
        finally:
            timeout.cancel()
        if body is _UNROUTABLE:
            raise ServiceUnavailable(f"The {service} service is not running")
        error = body.get("error")
        if error:
            remote = deserialize(error)
            if isinstance(remote, RemoteError):
                platform_error = from_remote(remote.value)
                if platform_error is not None:
                    raise platform_error
            raise remote
        return body["result"]


class _TimedServiceProxy:
    def __init__(self, provider: ServiceRpc, worker_ctx: Any, timeout: float) -> None:
        self._provider = provider
        self._worker_ctx = worker_ctx
        self._timeout = timeout

    def __getattr__(self, name: str) -> _TimedMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        return _TimedMethod(self._provider, self._worker_ctx, name, self._timeout)


class ServiceRpc(DependencyProvider):
    """Dependency: ``self.auth_rpc.get_user(...)``, bounded by a timeout.

    Calls go through the process's :class:`RpcClient`. They carry the
    worker's context, so the caller's identity, unless ``as_service`` names
    the calling service: then they carry that service's own identity
    (``service`` set, no user, no scopes) in its place, for calls a service
    makes on its own account (notify asking training about a booking; auth
    handing a reset code to notify). The callee checks ``caller.service``.
    """

    client = RpcClient()

    def __init__(
        self,
        target_service: str,
        timeout: float | None = None,
        as_service: str | None = None,
    ) -> None:
        self.target_service = target_service
        self.timeout = timeout
        self.service_identity = (
            service_identity(as_service).to_json() if as_service else None
        )

    def get_dependency(self, worker_ctx: Any) -> _TimedServiceProxy:
        timeout = self.timeout if self.timeout is not None else config.rpc_timeout()
        return _TimedServiceProxy(self, worker_ctx, timeout)


class _Responder(Responder):
    """Sends a reply through the process's reply producers (no confirms,
    transient; see :class:`_Publishers`)."""

    def __init__(self, pool: ProducerPool, exchange: Any, message: Any) -> None:
        self.pool = pool
        self.exchange = exchange
        self.message = message

    def send_response(self, result: Any, exc_info: Any) -> Any:
        error = serialize(exc_info[1]) if exc_info is not None else None
        # The reply is encoded the same way as the request, and serialised
        # once: a result that cannot be is answered as nameko does, with
        # UnserializableValueError (which always serialises).
        serializer = registry.type_to_name[self.message.properties["content_type"]]
        try:
            encoded = dumps({"result": result, "error": error}, serializer)
        except Exception:  # noqa: BLE001 (any failure to serialise the result)
            exc_info = sys.exc_info()
            error = serialize(UnserializableValueError(result))
            result = None
            encoded = dumps({"result": None, "error": error}, serializer)
        content_type, content_encoding, data = encoded
        self.pool.publish(
            data,
            content_type=content_type,
            content_encoding=content_encoding,
            exchange=self.exchange,
            routing_key=self.message.properties["reply_to"],
            correlation_id=self.message.properties.get("correlation_id"),
            delivery_mode=1,
        )
        return result, exc_info


class _RpcConsumer(RpcConsumer):
    publishers = _Publishers()

    def setup(self) -> None:
        super().setup()
        self.reply_exchange = get_rpc_exchange(self.container.config)

    def handle_result(self, message: Any, result: Any, exc_info: Any) -> Any:
        responder = _Responder(self.publishers.replies, self.reply_exchange, message)
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class Rpc(NamekoRpc):
    """nameko's RPC entrypoint with cheaper replies (see :class:`_Publishers`).

    Every service declares its RPC methods with this ``rpc``, not nameko's:
    all entrypoints of a service share one consumer of its ``rpc-<name>`` queue.
    """

    rpc_consumer = _RpcConsumer()

    def setup(self) -> None:
        super().setup()
        method = getattr(self.container.service_cls, self.method_name)
        self._signature = inspect.signature(method, follow_wrapped=False)

    def check_signature(self, args: Any, kwargs: Any) -> None:
        """As nameko's (IncorrectSignature when the arguments do not fit the
        method), with the method's signature read once, not per call."""
        try:
            self._signature.bind(None, *args, **kwargs)
        except TypeError as error:
            raise IncorrectSignature(str(error)) from None


rpc = Rpc.decorator
