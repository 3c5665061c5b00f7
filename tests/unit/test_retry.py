import random

from shared.adapters.retry import RetryPolicy


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_rate_limit_waits_until_the_reset_epoch():
    policy = RetryPolicy()
    wait = policy.rate_limit_wait({"X-RateLimit-Reset": "1700000010"}, now=1700000007.5, rng=random.Random(0))
    assert 2.5 < wait <= 2.75


def test_rate_limit_falls_back_to_retry_after_then_base_delay_and_is_capped():
    policy = RetryPolicy(base_delay=0.5, max_rate_limit_wait=60)
    assert 4.0 < policy.rate_limit_wait({"Retry-After": "4"}, now=0) <= 4.25
    assert 0.5 < policy.rate_limit_wait({}, now=0) <= 0.75
    assert policy.rate_limit_wait({"X-RateLimit-Reset": str(1700000000 + 3600)}, now=1700000000) == 60
    assert 0 < policy.rate_limit_wait({"X-RateLimit-Reset": "1699999990"}, now=1700000000) <= 0.25


def test_a_sendgrid_that_cannot_be_reached_raises_without_the_transport_error_chained():
    # The transport error names the URL, query string included: it stays out of any traceback.
    import pytest
    import requests

    from shared.adapters.sendgrid import ClientTuning, SendGridClient
    from shared.errors import SendGridError

    class Unreachable(requests.Session):
        def request(self, *args, **kwargs):
            raise requests.ConnectionError("host='api.sendgrid.com' url=/v3/marketing/lists/L/contacts?contact_ids=c1")

    client = SendGridClient(
        "https://api.sendgrid.com",
        "k" * 20,
        ClientTuning(policy=RetryPolicy(max_attempts=2)),
        session=Unreachable(),
        sleep=lambda s: None,
    )
    with pytest.raises(SendGridError, match="could not be reached after 2 attempts") as caught:
        client.get_list("L")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
