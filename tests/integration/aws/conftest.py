"""The ``aws`` fixture: per-test AWS resources on the session's moto server."""

from __future__ import annotations

import pytest

from tests.integration.aws.moto_aws import Aws, make_aws


@pytest.fixture
def aws(moto_server: str, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Aws:
    """A bucket whose crops notify an SQS queue and an SNS topic, and a FaceId table."""
    return make_aws(moto_server, monkeypatch)
