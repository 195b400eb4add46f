"""pytest configuration of tests/: the shared helpers' assertions (tests/support, e.g.
``check_guarantees``) are rewritten like the test modules' own, so that a failure shows its
values."""
import pytest

pytest.register_assert_rewrite('tests.support')
