"""How a delivered relio message becomes a python-socketio handler call (both shells, both sides).

A channel hands its layer each message it delivers (``on_message``); what happens next is the same
for the asyncio and the thread-based shell, server and client: check the event name, drop relio's
reserved names, pick the handler python-socketio would pick (a decorated function, a catch-all, a
class-based namespace's ``on_<event>``, or the instrumented ``_trigger_event`` of the admin UI),
and run it through the channel (``channel.run``), its return value answering a request. The
channel's runner decides how it runs (inline or in a task, or in the session's handler thread).
"""

from __future__ import annotations

import logging
from typing import Any

from relio.binding import wire
from relio.engine.errors import RemoteProtocolError

logger = logging.getLogger("relio")


def dispatch_server_message(server: Any, channel: Any, msg_id: bytes, items: list,
                            request: bool) -> None:
    """Run the server's handler for a delivered message (``items``: event name, then args)."""
    if not items or not isinstance(items[0], str):
        channel.protocol_error(RemoteProtocolError("event without a name"))
        return
    event = items[0]
    if event in wire.RESERVED_EVENTS:
        logger.warning('relio: dropped reserved event %r from %s', event, channel.sid)
        if request:
            channel.answer(msg_id, None)
        return
    namespace, sid = channel.namespace, channel.sid
    if server.logger.isEnabledFor(logging.INFO):
        server.logger.info('received event "%s" from %s [%s]', event, sid, namespace)
    items[0] = sid                  # the decoded list is ours: (sid, *args) without a slice
    args = tuple(items)
    then = None
    if request:
        not_handled = server.not_handled

        def then(result, channel=channel, msg_id=msg_id):
            if result is not not_handled:
                channel.answer(msg_id, result)
            else:
                channel.decline(msg_id)
    sequential = not server.async_handlers
    request_id = msg_id if request else None
    if '_trigger_event' in server.__dict__:        # instrumented (admin UI): its wrapper counts
        channel.run(server._trigger_event, (event, namespace, *args), then, sequential,
                    request_id)
        return
    handler, handler_args = server._get_event_handler(event, namespace, args)
    if handler is not None:
        channel.run(handler, handler_args, then, sequential, request_id)
        return
    ns_handler, ns_args = server._get_namespace_handler(namespace, args)
    if ns_handler is not None:
        channel.run(ns_handler.trigger_event, (event, *ns_args), then, sequential, request_id)
        return
    logger.info('relio: no handler for event "%s" [%s]', event, namespace)
    if request:
        channel.decline(msg_id)     # python-socketio sends no ack: the call times out


def dispatch_client_message(client: Any, channel: Any, msg_id: bytes, items: list,
                            request: bool) -> None:
    """Run the client's handler for a delivered message (``items``: event name, then args)."""
    if not items or not isinstance(items[0], str):
        channel.protocol_error(RemoteProtocolError("event without a name"))
        return
    event, namespace = items[0], channel.namespace
    if client.logger.isEnabledFor(logging.INFO):
        client.logger.info('Received event "%s" [%s]', event, namespace)
    then = None
    if request:
        def then(result, channel=channel, msg_id=msg_id):
            channel.answer(msg_id, result)
    if event in wire.RESERVED_EVENTS:
        logger.warning('relio: dropped reserved event %r', event)
        if then is not None:
            then(None)
        return
    args = tuple(items[1:])
    request_id = msg_id if request else None
    if '_trigger_event' in client.__dict__:
        channel.run(client._trigger_event, (event, namespace, *args), then, False, request_id)
        return
    handler, handler_args = client._get_event_handler(event, namespace, args)
    if handler is not None:
        channel.run(handler, handler_args, then, False, request_id)
        return
    ns_handler, ns_args = client._get_namespace_handler(namespace, args)
    if ns_handler is not None:
        channel.run(ns_handler.trigger_event, (event, *ns_args), then, False, request_id)
        return
    if then is not None:     # python-socketio's client acknowledges even unhandled events
        then(None)
