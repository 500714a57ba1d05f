import pytest


@pytest.fixture
def fake_credentials(monkeypatch):
    """moto needs credentials and a region; never real ones."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-central-1",
    }.items():
        monkeypatch.setenv(key, value)


class LambdaContext:
    function_name = "handler-under-test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-central-1:123456789012:function:handler-under-test"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self):
        return 60_000
