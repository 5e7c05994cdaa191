import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disclosure import DisclosureError, Hierarchy
from disclosure.perturbation import (
    KEY_MODULUS,
    PTable,
    cell_keys,
    perturb,
    perturb_table,
    record_keys,
    record_keys_from_ids,
)

SECRET = b"0123456789abcdef-test-secret"
PARAMS = [
    (5, 3.0, 0, None),
    (5, 3.0, 2, None),
    (5, 3.0, 3, None),
    (2, 1.0, 0, None),
    (5, 3.0, 2, 0.5),
    (4, 2.0, 1, 0.7),
]


@pytest.mark.parametrize(("D", "V", "js", "p_stay"), PARAMS)
def test_ptable_constraints(D, V, js, p_stay):
    t = PTable.build(D, V, js, p_stay)
    d = t.noise
    p = t.probabilities
    assert t.large == js + D + 1
    assert np.all(p >= 0)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert np.allclose(p @ d, 0.0, atol=1e-9)  # unbiased in every row
    assert np.allclose(p @ d.astype(float) ** 2, t.variance, atol=1e-9)
    assert p[0].tolist() == [0.0] * D + [1.0] + [0.0] * D  # zeros stay zero
    for i in range(1, t.large + 1):
        out = i + d[p[i] > 0]
        assert np.all(out >= 0)
        assert not np.any((out >= 1) & (out <= js))  # nothing published as 1..js
    # every row whose constraints allow it has exactly the variance V; the large-values row always does
    full = np.arange(t.large + 1) > js + D
    assert np.allclose(t.variance[full], V, atol=1e-9)
    assert abs(t.variance[-1] - V) < 1e-9
    if p_stay is not None:
        assert np.allclose(p[js + 1 :, D], p_stay)
    # key boundaries realise the probabilities to 2**-32 and never select an impossible noise
    widths = np.diff(np.concatenate([np.zeros((len(p), 1), dtype=np.int64), t.upper], axis=1), axis=1)
    assert np.all(widths >= 0) and np.all(t.upper[:, -1] == KEY_MODULUS)
    assert np.all(widths[p == 0] == 0)
    assert np.allclose(widths / KEY_MODULUS, p, atol=1e-9)
    listing = t.frame()
    assert np.allclose(listing.groupby("i")["p"].sum(), 1.0)
    assert (listing["upper"] >= listing["lower"]).all()
    assert (listing.groupby("i")["upper"].max() == KEY_MODULUS).all()


def test_ptable_small_count_rows_reach_variance_where_possible():
    t = PTable.build(5, 3.0, js=0)
    assert np.allclose(t.variance[1:], 3.0)  # with js = 0, V = 3 is reachable for every count >= 1
    t = PTable.build(5, 3.0, js=3)
    assert t.variance[2] == pytest.approx(4.0)  # 2 -> 0 or 4 is the least variance a 2 can have: documented


def test_ptable_rejects_bad_parameters():
    with pytest.raises(DisclosureError, match="js < D"):
        PTable.build(3, 2.0, js=3)
    with pytest.raises(DisclosureError, match="variance"):
        PTable.build(3, 0.0)
    with pytest.raises(DisclosureError, match="p_stay"):
        PTable.build(3, 1.0, p_stay=1.5)


def test_record_keys_deterministic_and_uniform():
    a = record_keys(20000, seed=1)
    assert np.array_equal(a, record_keys(20000, seed=1))
    assert not np.array_equal(a, record_keys(20000, seed=2))
    assert a.min() >= 0 and a.max() < KEY_MODULUS
    assert abs(a.mean() / KEY_MODULUS - 0.5) < 0.01
    assert np.array_equal(record_keys(5, seed=1), a[:5])


def test_record_keys_from_ids_are_stable():
    ids = [f"person-{i}" for i in range(1000)]
    k = record_keys_from_ids(ids, SECRET)
    assert np.array_equal(k, record_keys_from_ids(list(reversed(ids)), SECRET)[::-1])
    assert k[3] == record_keys_from_ids(["person-3"], SECRET)[0]
    assert not np.array_equal(k, record_keys_from_ids(ids, SECRET + b"x"))
    assert k.min() >= 0 and k.max() < KEY_MODULUS
    with pytest.raises(DisclosureError, match="16 bytes"):
        record_keys_from_ids(ids, b"short")


def test_perturb_zero_small_and_deterministic():
    t = PTable.build(5, 3.0, js=2)
    rng = np.random.default_rng(0)
    values = rng.integers(0, 30, 5000)
    keys = rng.integers(0, KEY_MODULUS, 5000)
    out = perturb(values, keys, t)
    assert np.array_equal(out, perturb(values, keys, t))
    assert np.all(out[values == 0] == 0)
    assert np.all(out >= 0) and not np.any((out >= 1) & (out <= 2))
    assert np.all(np.abs(out - values) <= 5)
    big = values >= t.large
    assert abs((out - values)[big].mean()) < 0.15 and abs((out - values)[big].var() - 3.0) < 0.3


def test_large_values_use_last_row():
    t = PTable.build(3, 1.5, js=1)
    keys = np.arange(0, KEY_MODULUS, KEY_MODULUS // 97, dtype=np.int64)
    noise_large = perturb(np.full(len(keys), t.large), keys, t) - t.large
    assert np.array_equal(perturb(np.full(len(keys), 10**6), keys, t) - 10**6, noise_large)


def records(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"id{i}" for i in range(n)]
    return pd.DataFrame(
        {
            "month": rng.choice(["m1", "m2", "m3"], n),
            "provider": rng.choice(["P1", "P2", "P3", "P4"], n),
            "sex": rng.choice(["F", "M"], n),
            "record_key": record_keys_from_ids(ids, SECRET),
        }
    )


MONTH = Hierarchy.flat("month", ["m1", "m2", "m3"])
PROV = Hierarchy.from_parents(
    "provider", {"C1": "Total", "C2": "Total", "P1": "C1", "P2": "C1", "P3": "C2", "P4": "C2"}
)
SEX = Hierarchy.flat("sex", ["F", "M"])


def test_cell_keys_sum_over_hierarchy():
    rec = records(500)
    frame = cell_keys(rec, {"month": MONTH, "provider": PROV})
    total = frame[(frame.month == "Total") & (frame.provider == "Total")].iloc[0]
    assert total["count"] == 500
    assert total["cell_key"] == int(rec["record_key"].astype(object).sum() % KEY_MODULUS)
    c1m2 = frame[(frame.month == "m2") & (frame.provider == "C1")].iloc[0]
    sel = rec[(rec.month == "m2") & rec.provider.isin(["P1", "P2"])]
    assert c1m2["count"] == len(sel)
    assert c1m2["cell_key"] == int(sel["record_key"].astype(object).sum() % KEY_MODULUS)


def test_same_population_same_value_in_different_tables():
    rec = records(800, seed=3)
    t = PTable.build(4, 2.0, js=2)
    a = perturb_table(rec, {"month": MONTH, "provider": PROV}, t)
    b = perturb_table(rec, {"provider": PROV, "sex": SEX}, t)
    c = perturb_table(rec, {"sex": SEX, "month": MONTH}, t)
    # the provider margin is in a (month Total) and b (sex Total): same populations, same published values
    ma = a[a.month == "Total"].set_index("provider")[["count", "cell_key", "perturbed"]]
    mb = b[b.sex == "Total"].set_index("provider")[["count", "cell_key", "perturbed"]]
    pd.testing.assert_frame_equal(ma, mb.loc[ma.index])
    # month margins in a and c, and the grand total everywhere
    pd.testing.assert_frame_equal(
        a[a.provider == "Total"].set_index("month")[["perturbed"]],
        c[c.sex == "Total"].set_index("month")[["perturbed"]].loc[list(MONTH.codes)],
    )
    grand = {int(f.loc[(f.iloc[:, 0] == "Total") & (f.iloc[:, 1] == "Total"), "perturbed"].iloc[0]) for f in (a, b, c)}
    assert len(grand) == 1
    # the row order of the records does not matter
    shuffled = perturb_table(rec.sample(frac=1, random_state=1), {"month": MONTH, "provider": PROV}, t)
    pd.testing.assert_frame_equal(a, shuffled)


def test_cell_keys_rejects_bad_records():
    rec = records(10)
    with pytest.raises(DisclosureError, match="non-leaf"):
        cell_keys(rec.assign(provider="C1"), {"month": MONTH, "provider": PROV})
    with pytest.raises(DisclosureError, match="key column"):
        cell_keys(rec.drop(columns="record_key"), {"month": MONTH, "provider": PROV})
    with pytest.raises(DisclosureError, match=r"\[0, 2\*\*32\)"):
        cell_keys(rec.assign(record_key=-1), {"month": MONTH, "provider": PROV})


@settings(max_examples=25, deadline=None)
@given(D=st.integers(1, 6), js_frac=st.floats(0, 0.99), V=st.floats(0.3, 6.0), p_stay=st.none() | st.floats(0, 0.95))
def test_property_ptable_rows_valid(D, js_frac, V, p_stay):
    js = int(js_frac * D)
    t = PTable.build(D, V, js, p_stay)
    p = t.probabilities
    assert np.allclose(p.sum(axis=1), 1.0) and np.all(p >= 0)
    assert np.allclose(p @ t.noise, 0.0, atol=1e-8)
    for i in range(1, t.large + 1):
        out = i + t.noise[p[i] > 0]
        assert np.all(out >= 0) and not np.any((out >= 1) & (out <= js))
