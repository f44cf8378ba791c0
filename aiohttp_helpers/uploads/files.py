"""Where ``Spool`` and ``UploadedFile`` were imported from before the split (kept importable).

The spooler is in :mod:`.spool`, the public file object in :mod:`.uploaded` and the
filesystem helpers in :mod:`.fs`.
"""

from .fs import file_mode, no_room
from .spool import IN_FLIGHT, WRITE_BATCH, Spool
from .uploaded import UploadedFile

__all__ = ["IN_FLIGHT", "WRITE_BATCH", "Spool", "UploadedFile", "file_mode", "no_room"]
