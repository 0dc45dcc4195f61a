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
from nameko.exceptions import RemoteError, UnknownService
from nameko.rpc import RpcProxy

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
        super().__init__(target_service)
        self.timeout = timeout

    def get_dependency(self, worker_ctx: Any) -> _TimedServiceProxy:
        proxy = super().get_dependency(worker_ctx)
        timeout = self.timeout if self.timeout is not None else config.rpc_timeout()
        return _TimedServiceProxy(proxy, self.target_service, timeout)
