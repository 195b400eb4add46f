"""The README's first command: the demo shows loss with at-most-once delivery and none with relio."""

from relio.__main__ import main


def test_demo_shows_the_difference(capsys):
    assert main(["demo", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    relio_line = next(line for line in out.splitlines() if line.split()[:2] == ["relio", "received"])
    plain_line = next(line for line in out.splitlines() if "at most once" in line)
    assert "lost    0   duplicated    0   out of order    0" in relio_line
    assert "lost    0   duplicated    0" not in plain_line
