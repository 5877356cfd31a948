"""A fixed-memory quantile sketch with a guaranteed relative error.

Values are counted in log-linear buckets (the HDR histogram construction), read straight from
the bits of each value rounded to single precision: the exponent and the first `m` bits of the
mantissa. The bucket with exponent `e` and mantissa prefix `f` holds `[L, U)` with
`L = 2**e * (1 + f / 2**m)` and `U = 2**e * (1 + (f + 1) / 2**m)`; reporting `2*L*U / (L + U)`
for any value of the bucket is within `(U - L) / (U + L) <= 1 / (2**(m + 1) + 1)` of it, and the
rounding to single precision adds at most `2**-24`. `m` is the smallest that keeps the total
within the requested accuracy: 6 for 1 % (64 buckets per octave, 0.78 %).

This layout is chosen for the cost of recording, not for the fewest buckets. `add_many` finds
the buckets of a whole batch in C: `struct` packs the batch as single-precision floats, and
`bytes.translate` turns the two top bytes of each (sign, exponent, first mantissa bits) into a
bucket number, clamping values out of range. What is left in Python is one statement per value,
`low[bucket] += 1` on a `bytearray`, the cheapest increment the interpreter has (the counts it
reads and writes are cached small integers); `add` gathers values to hand them over 64 at a
time. A byte wraps at 256: the rare wrap is caught and
counted in a second, 32-bit count per bucket (widened to 64 bits past 2**40 values in a bucket).
A bucket's count is its byte plus 256 times its wraps.

Buckets are grouped by the top byte of the float: a *region* of two octaves,
`2 * 2**m` buckets. Top bytes 1 to 126 are the regions that can be bucketed, `[2**-125, 2**127)`,
and the range of a sketch must lie within them (top byte 0 holds the subnormal numbers, 127 the
infinity and NaN). Each region's wraps are also totalled, so a quantile query sums each
region's bytes in C (an Adler-32 checksum of at most 256 bytes holds their exact sum), picks the
region holding the wanted rank, and only scans the buckets of that region. Memory depends only on
the range and the accuracy, never on how many values were recorded.

`min` and `max` are kept exactly without scanning every batch: another translate table marks the
top bytes of values that may be a new minimum or maximum, and only a batch holding one is scanned.
The top bytes of NaN, 0x7F and 0xFF (shared with the infinities and with magnitudes of 2**127 or
more), are always marked, so NaN, which the sketch ignores, is looked for and dropped in that
scan alone: batches of ordinary values pay nothing for it.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate, compress, repeat
from operator import add, lshift

__all__ = ["QuantileSketch"]

_LITTLE = sys.byteorder == "little"
# offsets, inside one packed single-precision float, of its top byte (sign and 7 exponent bits)
# and of the byte after it (last exponent bit, 7 mantissa bits); and of the 16-bit word they form
_TOP = 3 if _LITTLE else 0
_NEXT = 2 if _LITTLE else 1
_WORD = 1 if _LITTLE else 0
_FLOAT32_MAX = 3.4028234663852886e38
_ROUNDING = 2.0**-24  # relative error of rounding a double to single precision
_MAX_BITS = 23  # mantissa bits of a single-precision float
# the range the regions cover (top bytes 1 to 126): min_value and max_value must lie in it
_LOWEST = 2.0**-125
_BEYOND = 2.0**127
_RANGE = "[2**-125, 2**127) (about 2.35e-38 to 1.70e+38)"
# top bytes of a single-precision NaN of either sign (and of the infinities, and of magnitudes of
# 2**127 or more); `_watch_table` always maps them to 0
_NAN_TOPS = (0x7F, 0xFF)
_PENDING = 64  # values `add` gathers before putting them in the buckets at once


def _error_bound(bits: int) -> float:
    """The relative error guaranteed with `bits` mantissa bits per bucket."""
    return (1.0 + _ROUNDING) / ((2 << bits) + 1) + _ROUNDING


def _top_byte(value: float) -> int:
    """The top byte (sign and first 7 exponent bits) of `value` in single precision."""
    return struct.pack(">f", min(value, _FLOAT32_MAX))[0]


def _packed(values: Sequence[float]) -> bytes:
    """`values` as native single-precision floats, limited to their finite range."""
    fmt = f"={len(values)}f"
    try:
        return struct.pack(fmt, *values)
    except OverflowError:
        return struct.pack(fmt, *map(_clamped, values))


def _clamped(value: float) -> float:
    """`value` limited to the finite single-precision range (NaN stays NaN)."""
    if value > _FLOAT32_MAX:
        return _FLOAT32_MAX
    if value < -_FLOAT32_MAX:
        return -_FLOAT32_MAX
    return value


try:
    from zlib import adler32
except ImportError:  # pragma: no cover - CPython is almost always built with zlib

    def _block_sums(blocks: list[memoryview]) -> list[int]:
        """The sum of the bytes of each block."""
        return [sum(block) for block in blocks]

else:

    def _block_sums(blocks: list[memoryview]) -> list[int]:
        """The sum of the bytes of each block (of 256 bytes at most), in C."""
        # Adler-32's low half is 1 + the sum of the bytes modulo 65521: exact for 256 bytes
        return [(checksum & 0xFFFF) - 1 for checksum in map(adler32, blocks)]


def _watch_table(low: float, high: float) -> bytes:
    """A `bytes.translate` table: 0 for top bytes of values that may lie outside `[low, high]`.

    The others map to 1. Rounding to single precision keeps the order of values, so a value
    below `low` has a top byte at most `low`'s, and one above `high` at least `high`'s. The top
    bytes of NaN, `_NAN_TOPS`, always map to 0: `high`'s is at most 0x7F, the largest finite
    value's, and those of negative values are 128 or more.
    """
    if not (low > 0.0 and high > 0.0):
        return bytes(256)
    first, last = _top_byte(low), _top_byte(high)
    # positive values have top bytes 0-127, negative ones 128-255
    return bytes(first + 1) + b"\x01" * max(last - first - 1, 0) + bytes(256 - max(last, first + 1))


class QuantileSketch:
    """Counts values in log-linear buckets; answers quantiles within `relative_accuracy`.

    Values are bucketed from `min_value` to `max_value` (the range is widened to whole pairs of
    octaves); smaller ones (zero and negative ones too) are reported as `min_value`, larger ones
    as `max_value`. Both bounds must lie in `[2**-125, 2**127)` (about 2.35e-38 to 1.70e+38), the
    single-precision range the buckets cover; `ValueError` otherwise. The defaults cover 1 ns to
    one day with 1 % accuracy in about 19 KB. NaN (of either sign) is ignored: it is not counted
    and takes no part in `min`, `max` or any quantile. `min` and `max` are exact (over the values
    counted). Recording is O(1) per value, cheapest through `add_many`; a quantile query sums one
    byte per bucket in C and scans the buckets of one region.
    The sketch is not thread-safe: callers serialise access.
    """

    __slots__ = (
        "_bits",
        "_carries",
        "_count",
        "_hi_table",
        "_high",
        "_lo_table",
        "_low",
        "_max",
        "_max_value",
        "_min",
        "_min_value",
        "_pending",
        "_region_base",
        "_regions",
        "_stride",
        "_watch",
        "_width",
    )

    def __init__(
        self,
        relative_accuracy: float = 0.01,
        *,
        min_value: float = 1e-9,
        max_value: float = 86_400.0,
    ) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(
                f"relative_accuracy must be between 0 and 1 (exclusive), got {relative_accuracy!r}"
            )
        if not 0.0 < min_value < max_value:
            raise ValueError(
                f"need 0 < min_value < max_value, got min_value={min_value!r}, "
                f"max_value={max_value!r}"
            )
        for name, value in (("min_value", min_value), ("max_value", max_value)):
            if not _LOWEST <= value < _BEYOND:
                raise ValueError(f"{name} must lie in {_RANGE}, got {value!r}")
        bits = 0
        while _error_bound(bits) > relative_accuracy:
            bits += 1
            if bits > _MAX_BITS:
                raise ValueError(
                    f"relative_accuracy must be at least {_error_bound(_MAX_BITS):.3g}, "
                    f"got {relative_accuracy!r}"
                )
        self._bits = bits
        self._width = width = 2 << bits  # buckets per region: two octaves
        # one region per top byte, from 1 to 126 (a max_value just below 2**127 may round up to
        # it in single precision: the values above the region of top byte 126 are within 2**-24
        # of max_value)
        first = _top_byte(min_value)
        last = min(_top_byte(max_value), 126)
        self._region_base = first
        self._regions = regions = last - first + 1
        self._min_value = min_value
        self._max_value = max_value
        # bucket `k` of the byte counts is region `k // stride`, bucket `k % stride` in it;
        # region 0 gathers the values below the range, region `regions + 1` those above it
        self._stride = stride = max(width, 256)
        self._hi_table = bytes(
            0 if top >= 128 or top < first else regions + 1 if top > last else top - first + 1
            for top in range(256)
        )
        # (used when a region fits in 256 buckets, `bits <= 7`)
        self._lo_table = bytes((byte >> max(7 - bits, 0)) & (width - 1) for byte in range(256))
        self._low = bytearray((regions + 2) * stride)
        # wraps of each in-range bucket's byte: 32 bits count 2**40 values, 64 bits take over then
        self._high = array("I", bytes(4 * regions * width))
        self._carries = array("Q", bytes(8 * (regions + 2)))
        self._count = 0  # values in the buckets
        self._pending: list[float] = []  # values `add` has not put in the buckets yet
        self._min = math.inf
        self._max = -math.inf
        self._watch = _watch_table(self._min, self._max)

    @property
    def relative_accuracy(self) -> float:
        """The guaranteed relative error of every quantile answered (at most the one asked)."""
        return _error_bound(self._bits)

    @property
    def count(self) -> int:
        """How many values were recorded (NaN is not counted)."""
        self._flush()
        return self._count

    @property
    def min(self) -> float:
        """The smallest value recorded, exactly (`nan` when nothing was recorded)."""
        self._flush()
        return self._min if self._count else math.nan

    @property
    def max(self) -> float:
        """The largest value recorded, exactly (`nan` when nothing was recorded)."""
        self._flush()
        return self._max if self._count else math.nan

    @property
    def nbytes(self) -> int:
        """Bytes used by the bucket counts (constant, until a bucket holds 2**40 values)."""
        high, carries = self._high, self._carries
        return len(self._low) + high.itemsize * len(high) + carries.itemsize * len(carries)

    def add(self, value: float) -> None:
        """Record one value, NaN aside (O(1): values reach the buckets a few dozen at a time)."""
        pending = self._pending
        pending.append(value)
        if len(pending) >= _PENDING:
            self._flush()

    def _flush(self) -> None:
        """Put the values `add` has kept aside in the buckets."""
        if self._pending:
            values = self._pending
            self._pending = []
            self.add_many(values)

    def add_many(self, values: Sequence[float]) -> None:
        """Record several values, ignoring NaN; much cheaper per value than `add`."""
        packed = _packed(values)
        tops = packed[_TOP::4]
        # a value may be a new minimum or maximum, or NaN (whose top bytes are always watched)
        if 0 in tops.translate(self._watch):
            floats = memoryview(packed).cast("f")
            if (_NAN_TOPS[0] in tops or _NAN_TOPS[1] in tops) and any(map(math.isnan, floats)):
                values = list(compress(values, [not math.isnan(f) for f in floats]))
                packed = _packed(values)
                tops = packed[_TOP::4]
            if not values:
                return
            self._extremes(min(values), max(values))
        self._count += len(values)
        if self._stride != 256:
            self._add_packed(packed)
            return
        # each float's top 16 bits become its bucket: region (top byte) * 256 + bucket in it
        keys = bytearray(packed)
        keys[_TOP::4] = tops.translate(self._hi_table)
        keys[_NEXT::4] = packed[_NEXT::4].translate(self._lo_table)
        low = self._low
        pending = iter(memoryview(keys).cast("H")[_WORD::2])
        while True:
            try:
                for k in pending:
                    low[k] += 1
            except ValueError:  # the byte of bucket k reached 256
                low[k] = 0
                self._carry(k)
            else:
                break

    def _add_packed(self, packed: bytes) -> None:
        """Record packed single-precision floats one by one (accuracies finer than 0.4 %)."""
        low, hi_table, stride = self._low, self._hi_table, self._stride
        shift, mask, regions = _MAX_BITS - self._bits, self._width - 1, self._regions
        for word in memoryview(packed).cast("I"):
            region = hi_table[word >> 24]
            k = region * stride
            if 0 < region <= regions:
                k += (word >> shift) & mask
            if low[k] == 255:
                low[k] = 0
                self._carry(k)
            else:
                low[k] += 1

    def _extremes(self, low: float, high: float) -> None:
        """Take `low` and `high` into the minimum and the maximum."""
        if low < self._min or high > self._max:
            if low < self._min:
                self._min = low
            if high > self._max:
                self._max = high
            self._watch = _watch_table(self._min, self._max)

    def _carry(self, k: int) -> None:
        """Bucket `k`'s byte wrapped: count the wrap, worth 256 values."""
        region, bucket = divmod(k, self._stride)
        self._carries[region] += 1
        if 0 < region <= self._regions:
            self._add_high((region - 1) * self._width + bucket, 1)

    def _add_high(self, i: int, n: int) -> None:
        try:
            self._high[i] += n
        except OverflowError:  # 2**40 values in one bucket: widen the wrap counts to 64 bits
            self._high = array("Q", self._high)
            self._high[i] += n

    def merge(self, other: QuantileSketch) -> None:
        """Add every value recorded by `other` (which must have the same parameters)."""
        if (other._bits, other._region_base, other._regions) != (
            self._bits,
            self._region_base,
            self._regions,
        ):
            raise ValueError("can only merge sketches built with the same parameters")
        other._flush()
        # copies: when `other` is `self`, the carries made below must not be read back as its own
        other_low, other_high, other_carries = bytes(other._low), other._high[:], other._carries[:]
        low = self._low
        for k, n in enumerate(other_low):
            if n:
                total = low[k] + n
                if total >= 256:
                    low[k] = total - 256
                    self._carry(k)
                else:
                    low[k] = total
        for i, n in enumerate(other_high):
            if n:
                self._add_high(i, n)
        carries = self._carries
        for i, n in enumerate(other_carries):
            if n:
                carries[i] += n
        self._count += other._count
        self._extremes(other._min, other._max)

    def clear(self) -> None:
        """Forget every value recorded."""
        self._low = bytearray(len(self._low))
        self._high = array("I", bytes(4 * len(self._high)))
        self._carries = array("Q", bytes(8 * len(self._carries)))
        self._count = 0
        self._pending.clear()
        self._min = math.inf
        self._max = -math.inf
        self._watch = _watch_table(self._min, self._max)

    def quantile(self, q: float) -> float:
        """Return the `q`-quantile (0 <= q <= 1), or `nan` when nothing was recorded."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Return several quantiles; the regions are summed once for all of them."""
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantiles must lie in [0, 1], got {q!r}")
        self._flush()
        total = self._count
        if total == 0:
            return [math.nan for _ in qs]
        view = memoryview(self._low)
        sums = _block_sums([view[i : i + 256] for i in range(0, len(view), 256)])
        per_region = self._stride // 256
        if per_region > 1:
            sums = [sum(sums[i : i + per_region]) for i in range(0, len(sums), per_region)]
        # the number of values up to the end of each region
        ends = list(accumulate(map(add, sums, map(lshift, self._carries, repeat(8)))))
        last = self._regions + 1
        out = []
        for q in qs:
            rank = math.floor(q * (total - 1)) + 1  # 1-based rank of the value wanted
            region = min(bisect_left(ends, rank), last)
            if region == 0:
                out.append(self._min_value)
            elif region == last:
                out.append(self._max_value)
            else:
                bucket = self._bucket_of(region, rank - ends[region - 1])
                out.append(self._value_of(region, bucket))
        return out

    def _bucket_of(self, region: int, rank: int) -> int:
        """The bucket of in-range `region` holding its `rank`-th value (1-based)."""
        start, width = region * self._stride, self._width
        below = list(accumulate(self._low[start : start + width]))
        if not self._carries[region]:
            return bisect_left(below, rank)
        first = (region - 1) * width
        carried = list(accumulate(self._high[first : first + width]))
        return bisect_left(range(width), rank, key=lambda i: below[i] + (carried[i] << 8))

    def _value_of(self, region: int, bucket: int) -> float:
        """The value reported for a bucket: the point of least relative error to its bounds."""
        bits = self._bits
        exponent = 2 * (region - 1 + self._region_base) + (bucket >> bits) - 127
        prefix = bucket & ((1 << bits) - 1)
        lower = math.ldexp(1.0 + prefix / (1 << bits), exponent)
        upper = math.ldexp(1.0 + (prefix + 1) / (1 << bits), exponent)
        return 2.0 * lower * upper / (lower + upper)
