"""The WormSpace address space on the client side (WORMSPACE.md section 2).

Address ``a`` lives in segment ``a // size`` at offset ``a % size``; segment ``s`` is served by
replica set ``s mod P``. Each segment also has two hidden WORs, metadata and trim, at offset 0 of
their own kinds.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.messages import Kind, WorId


class BadAddress(ValueError):
    """An address, segment or range outside the address space."""


@dataclass(frozen=True)
class AddressSpace:
    """``size`` addresses per segment, ``replica_sets`` sets to spread segments over."""

    size: int
    replica_sets: int

    def locate(self, address: int) -> tuple[int, int]:
        """``(segment, offset)`` of ``address``."""
        if type(address) is not int or address < 0:
            raise BadAddress(f"an address is an int >= 0, got {address!r:.40}")
        return divmod(address, self.size)

    def address(self, segment: int, offset: int) -> int:
        """The address of ``offset`` in ``segment``."""
        return segment * self.size + offset

    def data_wor(self, address: int) -> WorId:
        """The data WOR behind ``address``."""
        seg, off = self.locate(address)
        return WorId(seg, Kind.DATA, off)

    def meta_wor(self, segment: int) -> WorId:
        """The metadata WOR of ``segment`` (written by ``alloc``)."""
        return WorId(self.check_segment(segment), Kind.META)

    def trim_wor(self, segment: int) -> WorId:
        """The trim WOR of ``segment`` (written by ``trim``)."""
        return WorId(self.check_segment(segment), Kind.TRIM)

    def check_segment(self, segment: int) -> int:
        """``segment`` if it is a valid segment number."""
        if type(segment) is not int or segment < 0:
            raise BadAddress(f"a segment is an int >= 0, got {segment!r:.40}")
        return segment

    def check_range(self, segment: int, lo: int, hi: int) -> None:
        """``[lo, hi)`` must be a non-empty range of offsets inside one segment."""
        self.check_segment(segment)
        if not (type(lo) is int and type(hi) is int and 0 <= lo < hi <= self.size):
            raise BadAddress(f"range [{lo}, {hi}) must be non-empty and inside a segment of "
                             f"{self.size} offsets")

    def replica_set(self, segment: int) -> int:
        """Index of the replica set serving ``segment``."""
        return segment % self.replica_sets
