"""relio: reliable, exactly-once, resumable message delivery for python-socketio."""

__version__ = "0.1.0"
