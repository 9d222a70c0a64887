"""A query nobody answers ends at its deadline in one of three ways, and each reads as "no worker answered".

The server's deadline is the client's own (the `grpc-timeout` header carries it), so both fire together: the
client's timer gives CANCELLED "Timeout expired", the server's handler DEADLINE_EXCEEDED, and the server's
transport resets the stream with RST_STREAM(CANCEL), which the Rust client reports as CANCELLED "h2 protocol
error: http2 error". On a loaded machine the reset often wins (docs/design.md, "Queries nobody answers").
The proxy makes the reset certain, so the third way is tested every run rather than by luck.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.client import IncidentError
from incidentctl.devserver import DevServer
from incidentctl.summaries import find_summary
from tests.conftest import TEST_TASK_QUEUE
from tests.h2_reset_proxy import ResetProxy
from workflows.targets import TargetInput, TargetWorkflow


@pytest.fixture
async def unanswered(client: Client, unique: str) -> AsyncIterator[WorkflowHandle]:
    """A running workflow whose task queue no worker polls: its queries are never answered."""
    handle = await client.start_workflow("NobodyRunsThis", id=f"unanswered-{unique}", task_queue=f"nobody-{unique}")
    yield handle
    await handle.terminate("test over")


async def test_a_stream_the_server_resets_reads_as_no_worker_answered(dev_server: DevServer,
                                                                      unanswered: WorkflowHandle) -> None:
    proxy = ResetProxy(int(dev_server.address.rsplit(":", 1)[1]))
    await proxy.start()
    try:
        proxied = await Client.connect(f"127.0.0.1:{proxy.port}")
        proxy.reset_new_streams = True
        with pytest.raises(RPCError) as raw:
            await proxied.get_workflow_handle(unanswered.id).query("state", rpc_timeout=timedelta(seconds=2))
        # The very error CI met on a loaded machine, after the core SDK asked again until the deadline.
        assert raw.value.status == RPCStatusCode.CANCELLED and "h2 protocol error" in raw.value.message
        assert len(proxy.resets) >= 2, "the core SDK retries a reset stream by itself"

        asked, started = len(proxy.resets), time.monotonic()
        with pytest.raises(IncidentError) as ours:
            await incidents.incident_state(proxied, unanswered.id, timeout=timedelta(seconds=1))
        # Two asks of 1 s (+1 s grace each), not two of the core SDK's ~9 s of retries after resets.
        assert time.monotonic() - started < 10
        assert ours.value.kind == "unreachable"
        assert "did not answer: no worker is polling its task queue" in str(ours.value)
        assert len(proxy.resets) > asked + 1
    finally:
        await proxy.stop()


async def test_our_deadline_and_the_servers_read_the_same(client: Client, unanswered: WorkflowHandle) -> None:
    """Without the proxy, whichever of the other two ways wins says the same to the person."""
    with pytest.raises(IncidentError) as ours:
        await incidents.incident_state(client, unanswered.id, timeout=timedelta(seconds=1))
    assert ours.value.kind == "unreachable" and "no worker is polling" in str(ours.value)


async def test_ctrl_c_while_a_query_is_answered_still_stops_the_command() -> None:
    # Python 3.11's asyncio.wait_for returns the answer and drops the cancellation when both arrive together,
    # so a watch loop would run on after Ctrl-C; asyncio.timeout keeps the cancellation.
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    class Answering:
        def query(self, query: str, rpc_timeout: timedelta) -> asyncio.Future[str]:
            return answer

    asking = asyncio.create_task(incidents._ask(Answering(), "state", timedelta(seconds=5)))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # it waits for the answer
    answer.set_result("the state")
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking


async def test_a_query_the_worker_fails_reads_as_a_sentence_and_the_report_goes_on(
        client: Client, worker: Worker, unique: str) -> None:
    """A worker that answers with an error (here: a workflow that has no `state` query; in the field, an
    incident that no longer replays) is one incident's problem: a sentence, and the summary says what is missing."""
    handle = await client.start_workflow(TargetWorkflow.run, TargetInput(target=f"nothing-{unique}"),
                                         id=f"target-query-{unique}", task_queue=TEST_TASK_QUEUE)
    await handle.result()  # idle from the start: it ends at once, and a query replays it
    with pytest.raises(IncidentError, match=r"could not answer.*state") as refused:
        await incidents.incident_state(client, handle.id)
    assert refused.value.kind == "unreachable"
    found = await find_summary(client, handle.id, run_id=None, closed="completed", task_queue=TEST_TASK_QUEUE,
                               result=None, latest_input=None)
    assert found.summary is None and "could not answer" in found.missing[0]
