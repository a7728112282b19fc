"""``make bench``'s pieces run (their figures are benchmarks, never asserted here)."""
from pipeline.core.pii import Hasher
from pipeline.core.rules import Rules
from pipeline.drivers import bench
from pipeline.drivers.generate import generate
from pipeline.drivers.replay import read_records


def test_the_engine_and_restore_rows_run_on_a_small_input():
    records = list(read_records(iter(r.line() for r in generate(seed=2, customers=30))))
    engine, identity_s = bench._engine(Rules(), Hasher(b"k"), records)
    assert engine.customers and identity_s > 0
    name, seconds, detail = bench.restore_row(engine.take_changes(), customers=300)
    assert name.startswith("restore of 300 customers") and seconds.endswith(" s") and "MB of entries" in detail
