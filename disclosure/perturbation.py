"""Cell-key perturbation of count tables (the ABS/ONS "cell key method").

Every record carries a fixed random key; a cell's key is the sum of its contributors' keys modulo
``KEY_MODULUS``, so it depends only on *which records* are in the cell, not on the table, the
cell's position or the summation order. A perturbation table (p-table) maps (cell count, cell key)
to a small noise ``d`` deterministically, hence the same population gets the same published value
in every table and every release: averaging repeated requests or differencing overlapping tables
reveals nothing the single table did not (the point of the method, see the references).

Keys are integers in ``[0, KEY_MODULUS)`` with ``KEY_MODULUS = 2**32``. ONS uses 0..255; a finer
modulus realises the p-table probabilities to 2**-32 instead of 1/256. Integers (not floats in
[0, 1)) make the cell key exact: a float sum's fractional part depends on the summation order, so
the same cell could get different keys in two tables. Sums are taken in ``uint64``, whose wrap-around
is harmless because 2**32 divides 2**64.

Perturbed tables are not additive (each total gets its own noise); that is intended and documented
to users. Zeros are never perturbed (an empty cell has no key).

References:

* B. Fraser, J. Wooton, "A proposed method for confidentialising tabular output to protect against
  differencing", UNECE/Eurostat work session on SDC, 2005.
* G. Thompson, S. Broadfoot, D. Elazar, "Methodology for the automatic confidentialisation of
  statistical outputs from remote servers at the Australian Bureau of Statistics", UNECE work
  session on SDC, 2013.
* T. Enderle, S. Giessing, R. Tent, "Designing confidentiality on the fly methodology - three
  aspects", PSD 2018 (maximum-entropy p-tables, the ``ptable`` R package).
* Office for National Statistics, "Protecting personal data in Census 2021 results" (cell key
  method with record keys and a p-table), 2021.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from disclosure.errors import DisclosureError
from disclosure.hierarchy import Hierarchy
from disclosure.table import Grid

KEY_MODULUS = 2**32
_TOL = 1e-12


# --------------------------------------------------------------------------------------------- keys


def record_keys(n: int, seed: int) -> np.ndarray:
    """``n`` uniform keys in ``[0, 2**32)``, deterministic for ``(n, seed)``.

    Uses the raw output of the PCG64 bit generator (high 32 bits), whose stream NumPy guarantees
    across versions (``Generator`` methods are not so guaranteed). For keys that must survive
    re-extraction of the data (records reordered, added or removed), prefer :func:`record_keys_from_ids`.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise DisclosureError(f"number of keys must be a non-negative integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DisclosureError(f"seed must be a non-negative integer, got {seed!r}")
    raw = np.random.PCG64(seed).random_raw(int(n))
    return np.asarray(np.asarray(raw, dtype=np.uint64) >> np.uint64(32), dtype=np.int64)


def record_keys_from_ids(ids: Sequence[str], secret: bytes) -> np.ndarray:
    """Key of each record from HMAC-SHA256(``secret``, id): the same record gets the same key everywhere.

    A keyed hash (not a plain hash) so that nobody without the secret can recompute keys from ids
    and undo the noise; the first 4 bytes of the digest are exactly uniform on ``[0, 2**32)``.
    """
    if not isinstance(secret, bytes | bytearray) or len(secret) < 16:
        raise DisclosureError("the key secret must be at least 16 bytes")
    out = np.empty(len(ids), dtype=np.int64)
    for i, rid in enumerate(ids):
        if not isinstance(rid, str) or not rid:
            raise DisclosureError(f"record id #{i} must be a non-empty string, got {rid!r}")
        digest = hmac.new(bytes(secret), rid.encode("utf-8"), hashlib.sha256).digest()
        out[i] = int.from_bytes(digest[:4], "big")
    return out


def _as_keys(keys: np.ndarray | Sequence[int] | pd.Series, what: str = "keys") -> np.ndarray:
    k = np.asarray(keys)
    if k.dtype.kind not in "iu":
        raise DisclosureError(f"{what} must be integers in [0, 2**32), got dtype {k.dtype}")
    if len(k) and (k.min() < 0 or k.max() >= KEY_MODULUS):
        raise DisclosureError(f"{what} must lie in [0, 2**32)")
    return k.astype(np.uint64)


# ------------------------------------------------------------------------------------------ p-table


def _boundary_distribution(d: np.ndarray, smallest: bool) -> np.ndarray:
    """Mean-0 distribution on ``d`` with the smallest (or largest) possible variance.

    Smallest: all mass at 0 if allowed, else on the nearest points either side. Largest: on the two
    extreme points (Bhatia-Davis bound ``-lo * hi``). Used when the target variance is out of reach.
    """
    p = np.zeros(len(d))
    if smallest:
        if (d == 0).any():
            p[d == 0] = 1.0
            return p
        a, b = d[d < 0].max(), d[d > 0].min()
    else:
        a, b = d.min(), d.max()
        if a == 0 or b == 0:  # only one side reachable: mean 0 forces no change
            p[d == 0] = 1.0
            return p
    p[d == a] = b / (b - a)
    p[d == b] = -a / (b - a)
    return p


def _max_entropy(d: np.ndarray, variance: float) -> np.ndarray:
    """Maximum-entropy distribution on ``d`` with mean 0 and the given variance (interior target).

    The solution is a discrete Gaussian ``p ∝ exp(a d + b d²)``; ``(a, b)`` minimise the convex dual
    ``log Σ exp(a d + b d²) - b V``, solved by damped Newton (2 unknowns). Max entropy spreads the
    noise as evenly as the moments allow (Enderle, Giessing & Tent 2018) instead of piling it on
    a few values, which an LP vertex would do.
    """
    s = float(np.abs(d).max())
    t = np.stack([d / s, (d / s) ** 2], axis=1)
    m = np.array([0.0, variance / s**2])
    lam = np.zeros(2)

    def dual(x: np.ndarray) -> tuple[float, np.ndarray]:
        z = t @ x
        zmax = z.max()
        w = np.exp(z - zmax)
        return float(zmax + np.log(w.sum()) - x @ m), w / w.sum()

    f, p = dual(lam)
    for _ in range(500):
        g = t.T @ p - m
        if np.abs(g).max() < 1e-13:
            break
        c = t - t.T @ p
        h = (c * p[:, None]).T @ c + 1e-15 * np.eye(2)
        step = np.linalg.solve(h, g)
        alpha = 1.0
        f_new, p_new = dual(lam - step)
        # backtracking only far from the optimum: near it the decrease is below rounding and the full step is right
        while np.abs(g).max() > 1e-6 and alpha > 1e-10 and not f_new <= f - 1e-4 * alpha * (g @ step):
            alpha /= 2
            f_new, p_new = dual(lam - alpha * step)
        lam, f, p = lam - alpha * step, f_new, p_new
    if abs(p @ d) > 1e-9 or abs(p @ d**2 - variance) > 1e-7 * max(1.0, variance):
        raise DisclosureError(f"p-table row did not converge (support {d.tolist()}, variance {variance:g})")
    return p


def _row(support: np.ndarray, variance: float, p_stay: float | None) -> np.ndarray:
    """Noise distribution over ``support`` (allowed ``d``): mean 0, variance as close to ``variance`` as allowed."""
    p = np.zeros(len(support))
    if p_stay is not None and (support == 0).any():
        if p_stay >= 1.0:
            p[support == 0] = 1.0
            return p
        rest = support != 0
        q = _row(support[rest], variance / (1.0 - p_stay), None)
        if q.sum() == 0:  # no mean-0 movement possible
            p[support == 0] = 1.0
            return p
        p[rest] = (1.0 - p_stay) * q
        p[support == 0] = p_stay
        return p
    if not ((support < 0).any() and (support > 0).any()):
        p[support == 0] = 1.0  # empty if 0 is not allowed either: caller checks
        return p
    lo = _boundary_distribution(support, smallest=True)
    hi = _boundary_distribution(support, smallest=False)
    v_lo, v_hi = float(lo @ support**2), float(hi @ support**2)
    if variance <= v_lo * (1 + 1e-9) + _TOL:
        return lo
    if variance >= v_hi * (1 - 1e-9) - _TOL:
        return hi
    return _max_entropy(support.astype(np.float64), variance)


@dataclass(frozen=True, eq=False)
class PTable:
    """Perturbation table: for each input count ``i`` a distribution of the noise ``d`` in ``[-D, D]``.

    Row ``i`` (``0 <= i <= large``) applies to count ``i``; the last row ``large = js + D + 1`` is
    the first count whose outputs ``i + d`` can never hit 0 or ``1..js``, so it serves every larger
    count (the "large values" row). Build with :meth:`build`.

    * ``probabilities[i, d + D]``: probability of noise ``d`` for count ``i`` (row 0 never moves);
    * ``upper[i, d + D]``: cumulative key boundaries; cell key ``k`` gets the first ``d`` with
      ``k < upper``, so zero-probability noise can never be drawn;
    * ``variance[i]``: achieved variance per row (``V`` where reachable; small counts may be forced
      above or below it by the constraints, see :meth:`build`).
    """

    D: int
    V: float
    js: int
    p_stay: float | None
    probabilities: np.ndarray = field(repr=False)
    upper: np.ndarray = field(repr=False)
    variance: np.ndarray = field(repr=False)

    @property
    def large(self) -> int:
        return self.probabilities.shape[0] - 1

    @property
    def noise(self) -> np.ndarray:
        return np.arange(-self.D, self.D + 1)

    @classmethod
    def build(cls, D: int, V: float, js: int = 0, p_stay: float | None = None) -> PTable:
        """Each row: mean 0 (unbiased), variance ``V``, ``i + d >= 0``, ``i + d`` not in ``1..js``.

        The distribution is the maximum-entropy one for those moments (a discrete Gaussian on the
        allowed outputs, as in the ``ptable`` R package). With ``p_stay`` the probability of no
        change is fixed for every count that may stay (``i > js``) and the rest is spread at
        maximum entropy with the variance the row still needs. Where the constraints make ``V``
        unreachable (small counts: the nearest allowed outputs either side may already imply a
        larger variance, or the bound at 0 a smaller one) the mean stays exactly 0 and the row
        takes the closest reachable variance, reported in ``variance``. ``js < D`` is required so
        that every count can move both down and up (``1..js`` down to 0, ``js + 1`` down to 0).
        """
        for name, v in (("D", D), ("js", js)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise DisclosureError(f"p-table {name} must be a non-negative integer, got {v!r}")
        if D < 1:
            raise DisclosureError("p-table D (maximum noise) must be at least 1")
        if js >= D:
            raise DisclosureError(f"p-table needs js < D, got js={js}, D={D}: count js + 1 could never move down")
        if not np.isfinite(V) or V <= 0:
            raise DisclosureError(f"p-table variance V must be positive, got {V!r}")
        if p_stay is not None and not 0.0 <= p_stay <= 1.0:
            raise DisclosureError(f"p_stay must be a probability, got {p_stay!r}")
        large = js + D + 1
        d = np.arange(-D, D + 1)
        probs = np.zeros((large + 1, len(d)))
        probs[0, D] = 1.0
        for i in range(1, large + 1):
            out = i + d
            allowed = (out >= 0) & ~((out >= 1) & (out <= js))
            probs[i, allowed] = _row(d[allowed], float(V), p_stay)
        probs[probs < 1e-15] = 0.0
        probs /= probs.sum(axis=1, keepdims=True)
        upper = np.minimum(np.rint(np.cumsum(probs, axis=1) * KEY_MODULUS).astype(np.int64), KEY_MODULUS)
        last = len(d) - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)  # last positive entry of each row
        upper[np.arange(len(d))[None, :] >= last[:, None]] = KEY_MODULUS
        variance = probs @ d.astype(np.float64) ** 2
        return cls(int(D), float(V), int(js), p_stay, probs, upper, variance)

    def noise_for(self, values: np.ndarray, cell_keys: np.ndarray) -> np.ndarray:
        """The noise ``d`` of each (count, cell key); counts above ``large`` use the last row."""
        v = np.asarray(values, dtype=np.int64)
        k = _as_keys(cell_keys, "cell keys").astype(np.int64)
        if v.shape != k.shape:
            raise DisclosureError(f"values {v.shape} and cell keys {k.shape} differ in shape")
        if (v < 0).any():
            raise DisclosureError("only non-negative counts can be perturbed")
        rows = self.upper[np.minimum(v, self.large)]
        idx = (rows <= k[..., None]).sum(axis=-1)
        return idx - self.D

    def frame(self) -> pd.DataFrame:
        """ONS-style listing: one row per (i, j) with positive probability and its key interval ``[lower, upper)``."""
        i, di = np.nonzero(self.probabilities)
        upper = self.upper[i, di]
        p = self.probabilities[i, di]
        lower = np.where(np.r_[True, i[1:] != i[:-1]], 0, np.r_[0, upper[:-1]])
        return pd.DataFrame({"i": i, "j": i + di - self.D, "p": p, "lower": lower, "upper": upper})


# ------------------------------------------------------------------------------------- perturbation


def perturb(values: np.ndarray, cell_keys: np.ndarray, ptable: PTable) -> np.ndarray:
    """Perturbed counts ``values + d``; deterministic in (count, cell key), never negative, zeros stay 0."""
    v = np.asarray(values, dtype=np.int64)
    return v + ptable.noise_for(v, cell_keys)


def cell_keys(records: pd.DataFrame, dims: Mapping[str, Hierarchy], key: str = "record_key") -> pd.DataFrame:
    """Every cell of the grid (totals included) with its ``count`` and ``cell_key``.

    ``records`` holds one row per record with a leaf code in each dimension column and its record
    key in ``key``. Totals are sums over the hierarchies, so a cell's key is the key sum of all its
    contributors whichever table it appears in.
    """
    grid = Grid.of(dims)
    if key not in records.columns:
        raise DisclosureError(f"records lack the key column {key!r}")
    keys = _as_keys(records[key].to_numpy(), f"column {key!r}")
    cells = grid.leaf_cells(records, "records")
    count = np.zeros(grid.size, dtype=np.int64)
    ksum = np.zeros(grid.size, dtype=np.uint64)
    np.add.at(count, cells, 1)
    np.add.at(ksum, cells, keys)
    cubes = [count.reshape(grid.shape), ksum.reshape(grid.shape)]
    for axis, h in enumerate(grid.hierarchies):
        pos = {c: i for i, c in enumerate(h.codes)}
        for cube in cubes:
            view = np.moveaxis(cube, axis, 0)
            for p in reversed(h.codes):  # children are complete before their parent
                kids = h.children(p)
                if kids:
                    view[pos[p]] = view[[pos[k] for k in kids]].sum(axis=0, dtype=view.dtype)
    out = grid.codes_frame()
    out["count"] = count
    out["cell_key"] = (ksum % np.uint64(KEY_MODULUS)).astype(np.int64)
    return out


def perturb_table(
    records: pd.DataFrame, dims: Mapping[str, Hierarchy], ptable: PTable, key: str = "record_key"
) -> pd.DataFrame:
    """:func:`cell_keys` plus the ``perturbed`` count of every cell (the same population, the same value)."""
    out = cell_keys(records, dims, key)
    out["perturbed"] = perturb(out["count"].to_numpy(), out["cell_key"].to_numpy(), ptable)
    return out
