"""RPC between services, always bounded in time.

nameko's own ``RpcProxy`` waits for a reply forever; :class:`ServiceRpc`
gives up after ``RPC_TIMEOUT`` seconds (or the timeout given) with
:class:`ServiceTimeout`, reports a service with no running instance as
:class:`ServiceUnavailable`, and turns a remote :class:`PlatformError` back
into the same error so callers can handle it by code.

Requests and replies are published on long-lived connections held by the
process (:class:`ProducerPool`) rather than through nameko's ``Publisher``,
which builds a kombu ``Connection`` and borrows a pooled producer for every
message: at a few hundred calls a second that bookkeeping cost more CPU
than the AMQP work itself.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import eventlet
from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu import Connection
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
from nameko.exceptions import RemoteError, UnserializableValueError, serialize
from nameko.extensions import SharedExtension
from nameko.messaging import HeaderEncoder
from nameko.rpc import Responder, RpcConsumer, RpcProxy, RpcReply, get_rpc_exchange
from nameko.rpc import Rpc as NamekoRpc

from plumbing import config
from plumbing.errors import ServiceTimeout, ServiceUnavailable, from_remote

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
    """The process's request and reply producers, shared by every service
    proxy and RPC consumer of the container."""

    def setup(self) -> None:
        cfg = self.container.config
        common = {
            "ssl": cfg.get(AMQP_SSL_CONFIG_KEY),
            "login_method": cfg.get(LOGIN_METHOD_CONFIG_KEY),
        }
        uri = cfg[AMQP_URI_CONFIG_KEY]
        # Requests keep confirms: with mandatory routing they tell a service
        # that has no queue (UnknownService, answered 503) at once.
        self.requests = ProducerPool(uri, confirms=True, **common)
        # Replies go to the caller's own auto-delete queue: persisting them
        # buys nothing, and a lost reply already ends in the caller's
        # timeout, so they are sent without waiting for a publisher confirm.
        self.replies = ProducerPool(uri, confirms=False, **common)

    def stop(self) -> None:
        self.requests.close()
        self.replies.close()

    def kill(self) -> None:
        self.stop()


class _TimedMethod(HeaderEncoder):
    def __init__(
        self, provider: ServiceRpc, worker_ctx: Any, name: str, timeout: float
    ) -> None:
        self._provider = provider
        self._worker_ctx = worker_ctx
        self._name = name
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        provider = self._provider
        service = provider.target_service
        listener = provider.rpc_reply_listener
        correlation_id = str(uuid.uuid4())
        reply = RpcReply(listener.get_reply_event(correlation_id))
        try:
            provider.publishers.requests.publish(
                {"args": args, "kwargs": kwargs},
                exchange=provider.exchange,
                routing_key=f"{service}.{self._name}",
                serializer=provider.serializer,
                # Requests are not persisted: a caller gives up after its
                # timeout, so a request that outlived a broker restart would
                # have no one waiting.
                delivery_mode=1,
                mandatory=True,
                reply_to=listener.routing_key,
                correlation_id=correlation_id,
                headers=self.get_message_headers(self._worker_ctx),
            )
        except UnroutableMessage:
            listener._reply_events.pop(correlation_id, None)
            raise ServiceUnavailable(f"The {service} service is not running") from None
        except (*_CONNECTION_ERRORS, ChannelError):
            listener._reply_events.pop(correlation_id, None)
            raise ServiceUnavailable("The message broker is not reachable") from None
        timeout = eventlet.Timeout(self._timeout)
        try:
            return reply.result()
        except eventlet.Timeout as fired:
            if fired is not timeout:
                raise
            listener._reply_events.pop(correlation_id, None)
            raise ServiceTimeout(
                f"The {service} service did not answer {self._name} in time"
            ) from None
        except RemoteError as error:
            platform_error = from_remote(error.value)
            if platform_error is not None:
                raise platform_error from None
            raise
        finally:
            timeout.cancel()


class _TimedServiceProxy:
    def __init__(self, provider: ServiceRpc, worker_ctx: Any, timeout: float) -> None:
        self._provider = provider
        self._worker_ctx = worker_ctx
        self._timeout = timeout

    def __getattr__(self, name: str) -> _TimedMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        return _TimedMethod(self._provider, self._worker_ctx, name, self._timeout)


class ServiceRpc(RpcProxy):
    """Dependency: ``self.auth_rpc.get_user(...)``, bounded by a timeout.

    Replies come through nameko's shared reply listener; requests go out
    through the process's :class:`ProducerPool` with confirms and mandatory
    routing, transient.
    """

    publishers = _Publishers()

    def __init__(self, target_service: str, timeout: float | None = None) -> None:
        super().__init__(target_service)
        self.timeout = timeout

    def setup(self) -> None:
        cfg = self.container.config
        self.exchange = get_rpc_exchange(cfg)
        self.serializer = cfg.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER)

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


rpc = Rpc.decorator
