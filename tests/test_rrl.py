"""The rate limiter on its own with a hand-driven clock: buckets, slip, prefixes, exemptions."""

from __future__ import annotations

from enumserver.config import RrlConfig
from enumserver.metrics import Counters
from enumserver.rrl import ALLOW, DROP, SLIP, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(**settings: object) -> tuple[RateLimiter, Clock, Counters]:
    clock, counters = Clock(), Counters()
    config = RrlConfig(enabled=True, **settings)  # type: ignore[arg-type]
    return RateLimiter(config, counters, clock), clock, counters


def test_burst_then_rate_then_refill() -> None:
    rrl, clock, _ = limiter(rate=10, burst=3, slip=0)
    assert [rrl.check("192.0.2.1") for _ in range(4)] == [ALLOW, ALLOW, ALLOW, DROP]
    clock.now += 0.1  # one token back at 10/s
    assert [rrl.check("192.0.2.1") for _ in range(2)] == [ALLOW, DROP]
    clock.now += 60  # refill stops at the burst
    assert [rrl.check("192.0.2.1") for _ in range(4)] == [ALLOW, ALLOW, ALLOW, DROP]


def test_slip_sends_every_nth_limited_answer_truncated() -> None:
    rrl, _, counters = limiter(rate=1, burst=1, slip=3)
    assert rrl.check("192.0.2.1") == ALLOW
    verdicts = [rrl.check("192.0.2.1") for _ in range(9)]
    assert verdicts == [DROP, DROP, SLIP] * 3
    assert (counters.rrl_slipped, counters.rrl_dropped) == (3, 6)
    rrl_one, _, _ = limiter(rate=1, burst=1, slip=1)
    rrl_one.check("192.0.2.1")
    assert [rrl_one.check("192.0.2.1") for _ in range(3)] == [SLIP, SLIP, SLIP]


def test_clients_share_the_bucket_of_their_prefix() -> None:
    rrl, _, _ = limiter(rate=1, burst=2, slip=0)
    assert rrl.check("192.0.2.1") == rrl.check("192.0.2.200") == ALLOW  # one /24
    assert rrl.check("192.0.2.7") == DROP
    assert rrl.check("198.51.100.1") == ALLOW  # another /24
    assert rrl.check("2001:db8:0:1::1") == rrl.check("2001:db8:0:ff::2") == ALLOW  # one /56
    assert rrl.check("2001:db8:0:1ff::3") == ALLOW  # another /56 (2001:db8:0:100::/56)
    assert rrl.check("2001:db8:0:1::9") == DROP
    assert rrl.check("::ffff:192.0.2.9") == DROP  # IPv4-mapped: the IPv4 prefix


def test_exempt_networks_are_never_limited() -> None:
    rrl, _, counters = limiter(rate=1, burst=1, exempt=("10.0.0.0/8", "2001:db8::/32"))
    assert all(rrl.check("10.1.2.3") == ALLOW for _ in range(100))
    assert all(rrl.check("2001:db8::53") == ALLOW for _ in range(100))
    assert counters.rrl_dropped == counters.rrl_slipped == 0


def test_tables_stay_bounded() -> None:
    rrl, _, _ = limiter(table_size=64)
    for host in range(1000):
        rrl.check(f"10.{host // 256}.{host % 256}.1")
    assert rrl.prefixes() <= 64 and len(rrl.by_address) <= 64
