"""Issue 18, on the real broker, S3 API and LibreOffice: a worker started while its object store
is down is alive and not ready; it becomes ready once the store answers, and files."""

from __future__ import annotations

import signal

from tests.e2e.conftest import wait_for
from tests.e2e.test_operations import metric, scrape
from tools import devstack, sample


def test_started_while_the_store_is_down_alive_not_ready_then_ready_and_filing(world, tmp_path):
    port = devstack.free_port()
    s3 = devstack.S3(folder=tmp_path / "own-s3", log=tmp_path / "own-s3.log")  # its own store, with the bucket,
    s3.start()                                                                # then down: the outage
    s3.create_bucket(world.bucket)
    s3.kill()
    world.settings.update({"RELIEFDOCS_METRICS_PORT": str(port), "RELIEFDOCS_BATCH_MAX_CASES": "10",
                           "RELIEFDOCS_RETRY_MAX_SECONDS": "2", **s3.env()})
    sent = sample.generate(10, ["LA"], seed=18, hostile_every=0)
    world.publish(sent)
    proc = world.worker()
    try:
        wait_for(lambda: scrape(port, "/startupz")[0] == 200, timeout=60)
        assert scrape(port, "/healthz")[0] == 200
        status, body = scrape(port, "/readyz")
        assert status == 503 and "s3" in body, body
        wait_for(lambda: metric(scrape(port, "/metrics")[1], "reliefdocs_retries_total", dependency="s3") >= 2,
                 timeout=60)
        assert scrape(port, "/healthz")[0] == 200 and scrape(port, "/readyz")[0] == 503
        s3.start()  # back on the same data: the bucket is there
        wait_for(lambda: scrape(port, "/readyz")[0] == 200, timeout=60)
        wait_for(lambda: metric(scrape(port, "/metrics")[1], "reliefdocs_bundles_stored_total") >= 1, timeout=180)
        text = scrape(port, "/metrics")[1]
        assert metric(text, "reliefdocs_dependency_up", dependency="s3") == 1
        assert "reliefdocs_records_unread{" in text  # the backlog the scaler reads
        assert scrape(port, "/healthz")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=150)
        s3.stop()
    assert code == 0
