"""RPC between services, always bounded in time.

nameko's own ``RpcProxy`` waits for a reply forever; :class:`ServiceRpc`
gives up after ``RPC_TIMEOUT`` seconds (or the timeout given) with
:class:`ServiceTimeout`, reports a service with no running instance as
:class:`ServiceUnavailable`, and turns a remote :class:`PlatformError` back
into the same error so callers can handle it by code.
"""

from __future__ import annotations

from typing import Any

import eventlet
from kombu.exceptions import OperationalError
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.exceptions import RemoteError, UnknownService
from nameko.rpc import Responder, RpcConsumer, RpcProxy, get_rpc_exchange
from nameko.rpc import Rpc as NamekoRpc

from plumbing import config
from plumbing.errors import ServiceTimeout, ServiceUnavailable, from_remote


class _TimedMethod:
    def __init__(self, method: Any, service: str, name: str, timeout: float) -> None:
        self._method = method
        self._service = service
        self._name = name
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            reply = self._method.call_async(*args, **kwargs)
        except UnknownService:
            raise ServiceUnavailable(
                f"The {self._service} service is not running"
            ) from None
        except (OperationalError, OSError):
            raise ServiceUnavailable("The message broker is not reachable") from None
        timeout = eventlet.Timeout(self._timeout)
        try:
            return reply.result()
        except eventlet.Timeout as fired:
            if fired is not timeout:
                raise
            raise ServiceTimeout(
                f"The {self._service} service did not answer {self._name} in time"
            ) from None
        except RemoteError as error:
            platform_error = from_remote(error.value)
            if platform_error is not None:
                raise platform_error from None
            raise
        finally:
            timeout.cancel()


class _TimedServiceProxy:
    def __init__(self, proxy: Any, service: str, timeout: float) -> None:
        self._proxy = proxy
        self._service = service
        self._timeout = timeout

    def __getattr__(self, name: str) -> _TimedMethod:
        return _TimedMethod(
            getattr(self._proxy, name), self._service, name, self._timeout
        )


class ServiceRpc(RpcProxy):
    """Dependency: ``self.auth_rpc.get_user(...)``, bounded by a timeout."""

    def __init__(self, target_service: str, timeout: float | None = None) -> None:
        # Requests are not persisted: a caller gives up after its timeout, so
        # a request that outlived a broker restart would have no one waiting.
        # Confirms and mandatory routing stay on: they tell an unknown service.
        super().__init__(target_service, delivery_mode=1)
        self.timeout = timeout

    def get_dependency(self, worker_ctx: Any) -> _TimedServiceProxy:
        proxy = super().get_dependency(worker_ctx)
        timeout = self.timeout if self.timeout is not None else config.rpc_timeout()
        return _TimedServiceProxy(proxy, self.target_service, timeout)


class _ReplyPublisher(Publisher):
    """Replies go to the caller's own auto-delete queue: persisting them buys
    nothing, and a lost reply already ends in the caller's timeout, so they
    are sent without waiting for a publisher confirm."""

    use_confirms = False
    delivery_mode = 1


class _Responder(Responder):
    publisher_cls = _ReplyPublisher


class _RpcConsumer(RpcConsumer):
    def handle_result(self, message: Any, result: Any, exc_info: Any) -> Any:
        config = self.container.config
        responder = _Responder(
            config[AMQP_URI_CONFIG_KEY],
            get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER),
            message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class Rpc(NamekoRpc):
    """nameko's RPC entrypoint with cheaper replies (see :class:`_ReplyPublisher`).

    Every service declares its RPC methods with this ``rpc``, not nameko's:
    all entrypoints of a service share one consumer of its ``rpc-<name>`` queue.
    """

    rpc_consumer = _RpcConsumer()


rpc = Rpc.decorator
