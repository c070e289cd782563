"""Public fakes for tests.

Fakes of Shipline's ports that ship with the package, so that tests of code using a port
inject one instead of monkeypatching: `FakeExecutor` runs steps without processes, scripted
with `FakeStep`.
"""

from shipline.testing.clock import FrozenClock
from shipline.testing.fake_executor import FakeExecutor, FakeStep

__all__ = ["FakeExecutor", "FakeStep", "FrozenClock"]
