"""relio.observe without a server: reason labels stay bounded, histograms are cumulative, and
several observers hear the same events."""
from __future__ import annotations

import pytest

from relio.observe import Observer, reason_label
from relio.observe.hooks import Observers
from relio.observe.instruments import Counter, Histogram, HistogramValue


@pytest.mark.parametrize('reason, label', [
    ('session expired', 'session expired'),
    ('the session ended (session expired)', 'session expired'),
    ('protocol error: frame too large', 'protocol error'),
    ('closed by peer: bye', 'closed by peer'),
    ('the server no longer has this session (it expired, the server restarted, or ...)',
     'unknown session'),
    ('bad credential for u-123', 'bad credential'),
    ('resume refused by the server', 'resume refused by the server'),
    ('client disconnect', 'client disconnect'),
    ('something user-123 typed', 'other'),
])
def test_reason_labels_are_bounded(reason, label):
    assert reason_label(reason) == label


def test_histogram_buckets_are_cumulative():
    h = HistogramValue((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 2.0, 3.0):
        h.observe(v)
    assert h.cumulative() == [(0.1, 2), (1.0, 3), (float('inf'), 5)]
    assert h.count == 5 and h.sum == pytest.approx(5.65)
    hist = Histogram((1.0,))
    hist.observe(('/',), 0.5)
    assert hist.labels(('/',)).count == 1 and hist.labels(('/x',)).count == 0


def test_counter_sums_per_label_set():
    c = Counter()
    c.inc(('/', 'a'))
    c.inc(('/', 'a'), 2)
    c.inc(('/', 'b'))
    assert c.values == {('/', 'a'): 3.0, ('/', 'b'): 1.0}


def test_observers_fan_out():
    heard: list = []

    class Recorder(Observer):
        def __init__(self, name, timed=False, events=False):
            self.name, self.timed, self.count_events = name, timed, events

        def queue_full(self, namespace):
            heard.append((self.name, 'queue_full', namespace))

        def handler_timer(self, namespace):
            return (lambda s: heard.append((self.name, 'took', s))) if self.timed else None

        def message_received(self, namespace, event):
            heard.append((self.name, 'event', event))

    both = Observers(Recorder('a', timed=True), Recorder('b', events=True))
    both.queue_full('/')
    both.message_received('/', 'e')
    timer = both.handler_timer('/')
    assert timer is not None
    timer(0.5)
    assert both.count_events
    assert heard == [('a', 'queue_full', '/'), ('b', 'queue_full', '/'), ('b', 'event', 'e'),
                     ('a', 'took', 0.5)]
    assert Observers(Recorder('c')).handler_timer('/') is None
