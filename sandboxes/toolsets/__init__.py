"""Real stateful tool sets for executable environments, each with an expected-state check."""

from sandboxes.toolsets.bank import BankLedger
from sandboxes.toolsets.calendar import Calendar
from sandboxes.toolsets.files import FileSystem

TOOLSETS = {"bank": BankLedger, "calendar": Calendar, "files": FileSystem}
__all__ = ["TOOLSETS", "BankLedger", "Calendar", "FileSystem"]
