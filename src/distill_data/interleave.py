"""Deterministic, seeded, row-level interleaving of K weighted inputs.

`interleave_schedule(weights, seed)` says, row by row, which input's next row comes next
when K inputs are merged into one stream.  Every row appears exactly once, each input's
rows keep their order, and the weight is spread evenly over the stream:

    for every prefix P (the prefixes ending right after each row) and every input i,
        |A_i(P) - s_i * A(P)| <= B

where A_i(P) is the weight of input i's rows in P, A(P) the total weight in P,
s_i = W_i / W the input's share of the total weight, and B the largest single row weight
over all inputs.  More precisely an input is never ahead by more than (1 - s_i) * B and
never behind by more than B.  If every weight is 0 the row counts are the weights (B = 1).

Algorithm
---------
Compare the merge with the fluid ideal in which, at "time" t (= weight emitted so far),
every input i has emitted exactly s_i * t.  Row r of input i, with weight w and
S = the weight of the rows of input i before it, then occupies the time interval
[a, b] = [S / s_i, (S + w) / s_i] in the ideal.  With T the weight emitted so far, the
schedule repeatedly emits, among the inputs whose next row is *eligible* (a <= T, i.e.
the input is not ahead: A_i <= s_i * T), the one whose next row has the smallest
deadline D = floor(b) (the smallest-eligible-finish-time-first rule of worst-case fair
weighted fair queueing, WF2Q).  Ties in D are broken by a fixed priority order of the
inputs derived from the seed; the seed affects nothing else.  All comparisons are exact
integer arithmetic (a <= T  <=>  ceil(S * W / W_i) <= T, since T is an integer).

Why the bound holds
-------------------
Write d_i = A_i - s_i * T.  The d_i sum to 0 (over the inputs with W_i > 0).

*Someone is always eligible.*  An exhausted input has d_j = s_j * (W - T) >= 0, so the
inputs with rows left have d's summing to <= 0, hence one of them has d_i <= 0, i.e. its
next row is eligible.  (Rows left but T = W means only zero-weight rows remain and every
d is 0.)

*Never ahead by more than (1 - s_i) B.*  Input i is only chosen when A_i <= s_i * T, so
right after its row (weight w) d_i <= w - s_i * w = (1 - s_i) w.  Until it is chosen again
A_i stays put while T grows, so d_i only decreases.

*Never behind by more than B.*  Take a prefix with total T and input i whose next row r
(weight w_r, deadline D_r, b_r >= D_r) is not in it.  If D_r >= T then
A_i = s_i * b_r - w_r >= s_i * T - w_r.  Otherwise:
  (1) For any integer t >= 1 the rows of all inputs with b < t weigh at most t - 1: for
      each input they form a prefix ending at cumulative weight < s_j * t, and the sum of
      these integers is < sum_j s_j * t = t.  Likewise the rows with a > t1 and b < t
      (t > t1) weigh at most t - t1 - 1.
  (2) If every row in the prefix has D <= D_r, the prefix plus row r are rows with
      b < D_r + 1, so T + w_r <= D_r < T: impossible.  So let x (weight w_x) be the last
      row in the prefix with D_x > D_r, emitted when the total was T1.  Every row emitted
      after x, and row r, has D <= D_r < D_x: its input's next row at T1 had an even
      smaller D and lost to x, so it was not eligible, i.e. these rows all have a > T1.
      (No row of x's own input follows x: those have D >= D_x.)  By (1):
      (T - T1 - w_x) + w_r <= D_r - T1, so T <= b_r + w_x - w_r, and
      d_i = A_i - s_i * T >= -(1 - s_i) * w_r - s_i * w_x >= -B.

Inputs with W_i = 0 (but W > 0) are never ahead or behind whatever their position; their
rows are spread evenly by row count over the stream (the same algorithm with unit weights,
so the counts stay within one row of proportional).

Output and cost
---------------
The schedule is an `array.array('B')` (one byte per row: 10 MB for 10 million rows) when
K <= 256, else 'H' (K <= 65536) or 'L'.  Time is O(N log K) with a handful of Python
operations per row (about 0.4 s per million rows for K = 4); besides the caller's weight
lists, memory is the output array plus O(K).
"""

from __future__ import annotations

import hashlib
from array import array
from heapq import heappop, heappush
from typing import Sequence

__all__ = ["interleave_schedule", "max_prefix_deviation"]


def _as_int_list(values) -> list:
    """A list of Python ints (numpy / pyarrow integers would overflow or be slow)."""
    if isinstance(values, list):
        return values
    if hasattr(values, "to_pylist"):      # pyarrow
        return values.to_pylist()
    if hasattr(values, "tolist"):         # numpy, array.array
        return values.tolist()
    return list(values)


def _prepare(weights: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[int], int, int]:
    """(weight lists, per-input totals, total W, bound B), counts standing in if W == 0."""
    lists = [_as_int_list(w) for w in weights]
    totals = []
    for i, w in enumerate(lists):
        total = sum(w)
        if not isinstance(total, int):
            raise TypeError(f"weights of input {i} must be integers")
        if w and min(w) < 0:
            raise ValueError(f"weights of input {i} must be >= 0")
        totals.append(total)
    W = sum(totals)
    if W == 0:                              # nothing weighs anything: weigh by row count
        lists = [[1] * len(w) for w in lists]
        totals = [len(w) for w in lists]
        W = sum(totals)
    B = max((max(w) for w in lists if w), default=0)
    return lists, totals, W, B


def _priority(seed: int, k: int) -> list[int]:
    """The seeded tie-break order of the inputs, identical on every platform and Python."""
    def key(i: int) -> bytes:
        return hashlib.blake2b(f"{seed}/{i}".encode(), digest_size=16).digest()
    return sorted(range(k), key=key)


def _wf2q(lists: list[list[int]], totals: list[int], W: int) -> array:
    """The schedule, as positions into `lists` (earlier position wins ties): every input
    must have a positive total and the totals must add up to W."""
    K = len(lists)
    n = [len(w) for w in lists]
    S = [0] * K                 # weight emitted so far per input
    pos = [0] * K               # next row per input
    eligible: list[int] = []    # D * K + r for inputs whose next row has a <= T
    waiting: list[int] = []     # E * K + r for the others, E = ceil(a)
    for r in range(K):
        waiting.append(r)       # first rows: a = 0
    out = array("B" if K <= 256 else "H" if K <= 65536 else "L")
    append = out.append
    T = 0
    last = K - 1
    for _ in range(sum(n)):
        limit = T * K + last    # E * K + r <= limit  <=>  E <= T
        while waiting and waiting[0] <= limit:
            r = heappop(waiting) % K
            heappush(eligible, ((S[r] + lists[r][pos[r]]) * W // totals[r]) * K + r)
        r = heappop(eligible) % K
        append(r)
        rows = lists[r]
        k = pos[r]
        w = rows[k]
        T += w
        s = S[r] + w
        S[r] = s
        k += 1
        pos[r] = k
        if k < n[r]:
            Wr = totals[r]
            e = -((-s * W) // Wr)
            if e <= T:
                heappush(eligible, ((s + rows[k]) * W // Wr) * K + r)
            else:
                heappush(waiting, e * K + r)
    return out


def _remap(schedule: array, mapping: list[int], k: int) -> array:
    """schedule[j] -> mapping[schedule[j]], in an array sized for k inputs."""
    typecode = "B" if k <= 256 else "H" if k <= 65536 else "L"
    if typecode == "B" and schedule.typecode == "B":
        table = bytes(mapping) + bytes(256 - len(mapping))
        return array("B", schedule.tobytes().translate(table))
    return array(typecode, map(mapping.__getitem__, schedule))


def interleave_schedule(weights: Sequence[Sequence[int]], seed: int) -> array:
    """Which input's next row comes next, for every row of the merged stream.

    `weights[i][r]` >= 0 is the weight of row r of input i (e.g. its assistant-token count).
    Returns an `array.array` of input indices (typecode 'B' for K <= 256: one byte per row),
    of length sum(len(w) for w in weights), in which input i appears len(weights[i]) times.
    For every prefix P and input i, |A_i(P) - s_i * A(P)| <= max row weight (see the module
    docstring for the algorithm and proof).  Deterministic for a given seed; the seed only
    breaks ties, so different seeds may (but need not) give different schedules.
    """
    lists, totals, W, _ = _prepare(weights)
    K = len(lists)
    order = _priority(seed, K)
    heavy = [i for i in order if totals[i] > 0]
    light = [i for i in order if totals[i] == 0 and lists[i]]     # zero-share inputs
    if not heavy:
        return array("B" if K <= 256 else "H" if K <= 65536 else "L")
    main = _remap(_wf2q([lists[i] for i in heavy], [totals[i] for i in heavy], W), heavy, K)
    if not light:
        return main
    # Spread the zero-share rows by row count: stream 0 is `main`, stream j the j-th light.
    units = [[1] * len(main)] + [[1] * len(lists[i]) for i in light]
    coarse = _wf2q(units, [len(u) for u in units], sum(len(u) for u in units))
    merged = array(main.typecode)
    take = iter(main).__next__
    for j in coarse:
        merged.append(take() if j == 0 else light[j - 1])
    return merged


def _max_scaled_deviation(weights: Sequence[Sequence[int]], schedule: Sequence[int]) -> tuple[int, int, int]:
    """(max over prefixes P and inputs i of |A_i(P) * W - W_i * A(P)|, W, B), exactly.

    Raises ValueError unless `schedule` takes every row of every input exactly once.
    Between two rows of input i its d_i = A_i - s_i * A only decreases, so it suffices to
    look at d_i just before and just after each of its rows (and it ends at 0).
    """
    lists, totals, W, B = _prepare(weights)
    K = len(lists)
    n = [len(w) for w in lists]
    pos = [0] * K
    A_i = [0] * K
    A = 0
    worst = 0
    for i in schedule:
        if not 0 <= i < K or pos[i] >= n[i]:
            raise ValueError(f"schedule takes a row that input {i} does not have")
        before = A_i[i] * W - totals[i] * A
        w = lists[i][pos[i]]
        pos[i] += 1
        A_i[i] += w
        A += w
        after = A_i[i] * W - totals[i] * A
        worst = max(worst, -before, before, after, -after)
    if pos != n:
        raise ValueError("schedule leaves rows out")
    return worst, W, B


def max_prefix_deviation(weights: Sequence[Sequence[int]], schedule: Sequence[int]) -> tuple[float, float]:
    """(max over prefixes P and inputs i of |A_i(P) - s_i * A(P)|, B = max row weight).

    Weights are row counts if they are all 0.  The schedule satisfies the guarantee iff
    the first value is <= the second (exact integer check: `_max_scaled_deviation`).
    """
    worst, W, B = _max_scaled_deviation(weights, schedule)
    return (worst / W if W else 0.0), float(B)
