"""relio's metrics, without any dependency: :class:`RelioMetrics` and what it collects.

:class:`RelioMetrics` is the server's :class:`~relio.observe.hooks.Observer`. It counts the few
things that happen once per session or once per failure (resumes by outcome, sessions ended by
reason, deliveries failed by reason, full outboxes) and, at scrape time, reads everything else from
the live sessions: the engine's counters (messages, retransmissions, duplicates), the channel's
byte counts, outbox depths and smoothed RTTs, and the sessions by state. Nothing runs per message
unless asked (handler durations, and event names as labels, are opt-in).

Counters of sessions that have ended are kept (``closed`` totals per namespace), so totals never go
back when a session goes. A session adopted from another node arrives with its old counters; they
are subtracted as a baseline, so each node counts only what happened on it.

:meth:`RelioMetrics.collect` returns :class:`Family` objects; the exporters
(:mod:`relio.observe.prometheus`, :mod:`relio.observe.otel`) turn them into their own types.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relio.observe.hooks import Observer
from relio.observe.instruments import LATENCY_BUCKETS, Counter, Histogram, HistogramValue

if TYPE_CHECKING:
    from relio.asyncio.registry import ServerSession
    from relio.asyncio.server import AsyncServer

#: Engine counters summed per namespace: (engine attribute, metric name, help).
ENGINE_COUNTERS = (
    ("messages_sent", "messages_sent", "Messages queued for delivery to clients."),
    ("messages_delivered", "messages_delivered", "Messages the client acknowledged."),
    ("messages_received", "messages_received", "Messages received from clients (each once)."),
    ("messages_expired", "messages_expired", "Messages that will never be delivered."),
    ("frames_sent", "frames_sent", "Frames written, retransmissions included."),
    ("frames_retransmitted", "frames_retransmitted", "Frames sent again (loss or a resume)."),
    ("frames_received", "frames_received", "Frames received from clients."),
    ("duplicates_dropped", "duplicates_dropped", "Frames received twice and dropped."),
    ("frames_refused", "frames_refused", "Frames refused (limits exceeded)."),
)
#: Channel byte counters: (channel attribute, metric name, help).
BYTE_COUNTERS = (
    ("bytes_sent", "sent_bytes", "Bytes of relio batches written to clients."),
    ("bytes_received", "received_bytes", "Bytes of relio batches received from clients."),
)
_N_COUNTERS = len(ENGINE_COUNTERS) + len(BYTE_COUNTERS)

#: Removed sessions kept until the next collection (beyond, the oldest are folded at once).
MAX_LEAVING = 10_000

#: Seconds: a round trip on a LAN to one over a congested mobile link.
RTT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: The reasons relio and python-socketio end sessions, fail messages and refuse resumes; any other
#: reason is reported as "other" (reasons may carry free text: a label must stay bounded).
KNOWN_REASONS = frozenset({
    "session expired", "session evicted", "session closed", "delivery timeout",
    "server disconnect", "server shutdown", "client disconnect", "ping timeout",
    "transport close", "transport error", "connection refused", "resume refused",
    "resume refused by the server", "protocol error", "closed by peer", "the session expired",
    "unknown session", "bad credential", "the session moved to another node",
    "the connection already has a session in this namespace",
})


def reason_label(reason: str) -> str:
    """A bounded label for a free-text reason (``"protocol error: x"`` -> ``"protocol error"``)."""
    if reason.startswith("the session ended (") and reason.endswith(")"):
        reason = reason[len("the session ended ("):-1]
    for prefix in ("protocol error", "closed by peer", "resumed on another namespace"):
        if reason.startswith(prefix):
            return prefix
    if reason.startswith("the server no longer has this session"):
        return "unknown session"
    if "credential" in reason:
        return "bad credential"
    return reason if reason in KNOWN_REASONS else "other"


@dataclass
class Family:
    """One metric and its samples. ``kind``: ``counter``, ``gauge``, ``histogram`` (cumulative)
    or ``gauge_histogram`` (a distribution of the present, e.g. RTTs of the live sessions).
    Counter names carry no ``_total``; exporters add it."""

    name: str
    kind: str
    documentation: str
    label_names: tuple[str, ...]
    unit: str = ""
    samples: list[tuple[tuple[str, ...], Any]] = field(default_factory=list)


class RelioMetrics(Observer):
    """The metrics of one :class:`relio.AsyncServer`.

    :param server: the server to observe (or call :meth:`attach` later).
    :param node: the ``node`` label (default: the Redis manager's host id, else ``host:pid``).
                 Several worker processes each have their own: see docs/OPERATIONS.md.
    :param time_handlers: measure handler durations (two clock reads per handled message).
    :param event_labels: count received messages by event name too (opt-in: cardinality).
    """

    def __init__(self, server: AsyncServer | None = None, *, node: str | None = None,
                 time_handlers: bool = True, event_labels: bool = False):
        self.node = node
        self.time_handlers = time_handlers
        self.count_events = event_labels
        self.server: AsyncServer | None = None
        self.resumes = Counter()            # (namespace, outcome, reason)
        self.sessions_ended = Counter()     # (namespace, reason)
        self.deliveries_failed = Counter()  # (namespace, reason)
        self.queue_full_events = Counter()  # (namespace,)
        self.events_received = Counter()    # (namespace, event), with event_labels
        self.handler_duration = Histogram(LATENCY_BUCKETS)   # (namespace,)
        self.closed: dict[str, list[float]] = {}   # namespace -> counters of removed sessions
        self._leaving: deque[ServerSession] = deque()   # removed, not yet folded into closed
        if server is not None:
            self.attach(server)

    def attach(self, server: AsyncServer) -> RelioMetrics:
        """Observe ``server`` (its ``relio_observer`` becomes this object)."""
        self.server = server
        server.relio_observe(self)
        return self

    def _node(self, server: AsyncServer) -> str:
        # Resolved at the first collection, not at attach: a server made before gunicorn forks
        # its workers would otherwise give them all the master's pid.
        if self.node is None:
            host_id = server.manager.relio_host_id
            self.node = host_id or f"{socket.gethostname()}:{os.getpid()}"
        return self.node

    # --- Observer ------------------------------------------------------------------------------
    def session_added(self, session: ServerSession, adopted: bool) -> None:
        if adopted:     # what it counted on other nodes is theirs
            self._fold(session, -1.0)

    def session_removed(self, session: ServerSession) -> None:
        # Folded at the next collection, not now: a session that ends is closed right after it
        # leaves the registry, and its last counts (messages expired by the close) come then.
        leaving = self._leaving
        leaving.append(session)
        if len(leaving) > MAX_LEAVING:
            self._fold(leaving.popleft(), 1.0)

    def _fold_leaving(self) -> None:
        leaving = self._leaving
        while leaving:
            self._fold(leaving.popleft(), 1.0)

    def _fold(self, session: ServerSession, sign: float) -> None:
        totals = self.closed.get(session.namespace)
        if totals is None:
            totals = self.closed[session.namespace] = [0.0] * _N_COUNTERS
        for i, value in enumerate(_counters_of(session)):
            totals[i] += sign * value

    def resumed(self, session: ServerSession) -> None:
        self.resumes.inc((session.namespace, "resumed", ""))

    def resume_refused(self, namespace: str, reason: str) -> None:
        self.resumes.inc((namespace, "refused", reason_label(reason)))

    def session_ended(self, namespace: str, reason: str) -> None:
        self.sessions_ended.inc((namespace, reason_label(reason)))

    def delivery_failed(self, namespace: str, reason: str) -> None:
        self.deliveries_failed.inc((namespace, reason_label(reason)))

    def queue_full(self, namespace: str) -> None:
        self.queue_full_events.inc((namespace,))

    def handler_timer(self, namespace: str) -> Callable[[float], None] | None:
        if not self.time_handlers:
            return None
        return self.handler_duration.labels((namespace,)).observe

    def message_received(self, namespace: str, event: str) -> None:
        self.events_received.inc((namespace, event))

    # --- collection ----------------------------------------------------------------------------
    def collect(self) -> list[Family]:
        """Every metric now (reads the live sessions: O(sessions), call it per scrape)."""
        server = self.server
        if server is None:
            return []
        node = self._node(server)
        self._fold_leaving()
        totals: dict[str, list[float]] = {ns: list(v) for ns, v in self.closed.items()}
        states: dict[tuple[str, str], int] = {}
        outbox: dict[str, list[int]] = {}
        rtts: dict[str, HistogramValue] = {}
        for session in server.relio_registry:
            ns = session.namespace
            sums = totals.get(ns)
            if sums is None:
                sums = totals[ns] = [0.0] * _N_COUNTERS
            for i, value in enumerate(_counters_of(session)):
                sums[i] += value
            key = (ns, "suspended" if session.suspended else "connected")
            states[key] = states.get(key, 0) + 1
            engine = session.channel.engine
            depth = outbox.get(ns)
            if depth is None:
                depth = outbox[ns] = [0, 0]
            depth[0] += engine.outbox_messages
            depth[1] += engine.outbox_bytes
            srtt = engine.stats["srtt"]
            if srtt is not None:
                hist = rtts.get(ns)
                if hist is None:
                    hist = rtts[ns] = HistogramValue(RTT_BUCKETS)
                hist.observe(float(srtt))
        # The namespaces the application serves are listed even before their first session, so
        # that a dashboard or an alert sees 0 rather than nothing.
        for ns in (*server.handlers, *server.namespace_handlers):
            totals.setdefault(ns, [0.0] * _N_COUNTERS)
        for ns in totals:
            outbox.setdefault(ns, [0, 0])
            for state in ("connected", "suspended"):
                states.setdefault((ns, state), 0)
        ns_l = ("node", "namespace")
        out = [Family("relio_sessions", "gauge",
                      "relio sessions by state (suspended: waiting to be resumed).",
                      ("node", "namespace", "state"),
                      samples=[((node, ns, st), n) for (ns, st), n in sorted(states.items())])]
        names = [(n, h) for _, n, h in ENGINE_COUNTERS] + [(n, h) for _, n, h in BYTE_COUNTERS]
        for i, (name, doc) in enumerate(names):
            out.append(Family(f"relio_{name}", "counter", doc, ns_l,
                              "bytes" if name.endswith("_bytes") else "",
                              [((node, ns), v[i]) for ns, v in sorted(totals.items())]))
        out.append(Family("relio_outbox_messages", "gauge",
                          "Messages waiting for the client's acknowledgement.", ns_l,
                          samples=[((node, ns), d[0]) for ns, d in sorted(outbox.items())]))
        out.append(Family("relio_outbox_bytes", "gauge",
                          "Bytes of messages waiting for the client's acknowledgement.", ns_l,
                          "bytes", [((node, ns), d[1]) for ns, d in sorted(outbox.items())]))
        out.append(Family("relio_rtt_seconds", "gauge_histogram",
                          "Smoothed round-trip time of the live sessions (engine SRTT).", ns_l,
                          "seconds", [((node, ns), h) for ns, h in sorted(rtts.items())]))
        out.append(_counter("relio_resumes", "Resumes by outcome (resumed, refused) and reason.",
                            ("node", "namespace", "outcome", "reason"), node, self.resumes))
        out.append(_counter("relio_sessions_ended", "Sessions ended, by reason.",
                            ("node", "namespace", "reason"), node, self.sessions_ended))
        expired = Counter()
        for (ns, reason), v in self.sessions_ended.values.items():
            if reason in ("session expired", "session evicted"):
                expired.inc((ns,), v)
        out.append(_counter("relio_sessions_expired",
                            "Suspended sessions that were never resumed (expired or evicted).",
                            ns_l, node, expired))
        out.append(_counter("relio_deliveries_failed",
                            "Messages that will never be delivered, by reason.",
                            ("node", "namespace", "reason"), node, self.deliveries_failed))
        out.append(_counter("relio_queue_full", "Emits that found a recipient's outbox full.",
                            ns_l, node, self.queue_full_events))
        out.append(Family("relio_handler_duration_seconds", "histogram",
                          "Time from a handler's start to its end.", ns_l, "seconds",
                          [((node, *k), v)
                           for k, v in sorted(self.handler_duration.values.items())]))
        if self.count_events:
            out.append(_counter("relio_events_received", "Messages received by event name.",
                                ("node", "namespace", "event"), node, self.events_received))
        out.extend(_cluster_families(server, node))
        return out


def _counters_of(session: ServerSession) -> list[float]:
    channel = session.channel
    engine = channel.engine
    values = [getattr(engine, attr) for attr, _, _ in ENGINE_COUNTERS]
    values.extend(getattr(channel, attr) for attr, _, _ in BYTE_COUNTERS)
    return values


def _counter(name: str, doc: str, label_names: tuple[str, ...], node: str,
             counter: Counter) -> Family:
    return Family(name, "counter", doc, label_names,
                  samples=[((node, *k), v) for k, v in sorted(counter.values.items())])


#: The Redis manager's counters: (stats key, metric name, labels, help).
CLUSTER_COUNTERS = (
    ("published", "relio_relay_published", (), "Bus entries this node published."),
    ("applied", "relio_relay_applied", (), "Bus entries this node read."),
    ("failed", "relio_relay_errors", (("kind", "not published"),),
     "Relay errors: entries Redis never took, entries lost to a gap, Redis errors."),
    ("gaps", "relio_relay_errors", (("kind", "gap"),), ""),
    ("redis_errors", "relio_relay_errors", (("kind", "redis"),), ""),
    ("handed_over", "relio_sessions_handed_over", (), "Sessions handed to other nodes."),
    ("claimed", "relio_sessions_taken_over", (), "Sessions taken over from other nodes."),
    ("forced", "relio_sessions_taken_over_forced", (),
     "Sessions taken from a node that did not hand them over (it died)."),
    ("saved", "relio_session_saves", (("outcome", "saved"),), "Session record saves."),
    ("save_failed", "relio_session_saves", (("outcome", "failed"),), ""),
    ("fenced", "relio_session_saves", (("outcome", "fenced"),), ""),
)


def _cluster_families(server: AsyncServer, node: str) -> list[Family]:
    manager = server.manager
    stats = manager.relio_cluster_stats
    if not stats:
        return []
    families: dict[str, Family] = {}
    for key, name, extra, doc in CLUSTER_COUNTERS:
        family = families.get(name)
        if family is None:
            family = families[name] = Family(name, "counter", doc,
                                             ("node", *(k for k, _ in extra)))
        family.samples.append(((node, *(v for _, v in extra)), stats.get(key, 0)))
    out = list(families.values())
    latencies = manager.relio_cluster_latencies
    for key, name, doc in (
            ("relay_lag", "relio_relay_lag_seconds",
             "Time from an entry's publication to this node reading it."),
            ("save", "relio_session_save_duration_seconds", "Time a session save took.")):
        hist = latencies.get(key)
        if hist is not None:
            out.append(Family(name, "histogram", doc, ("node",), "seconds",
                              [((node, *k), v) for k, v in hist.values.items()]))
    return out
