"""Sizes as people type them on a command line: ``2M``, ``500k``, ``1.5G``, ``4096``.

Suffixes are binary, as rsync's ``--bwlimit`` and ``df`` read them: ``K`` is
1024 bytes, ``M`` 1024², ``G`` 1024³, ``T`` 1024⁴; a trailing ``B`` or ``iB``
is allowed (``2MiB``, ``2MB``), case does not matter.
"""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """Bytes of ``text`` (``"2M"`` → 2097152); ValueError with the accepted forms if invalid."""
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a size; write e.g. 4096, 500K, 2M or 1.5G")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
