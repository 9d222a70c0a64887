"""`prometheus.*`: conditions and answer parsing (unit), then the actions against Debian's real Prometheus scraping
the simulated cluster's kube-state-metrics series."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.base import ActionInput, get_action, params_errors
from activities.catalog import load_all
from activities.errors import ActionError
from activities.prometheus.api import MAX_ANSWER_BYTES, TOKEN_ENV, URL_ENV, endpoint
from activities.prometheus.conditions import Condition, parse_condition
from activities.prometheus.results import MAX_POINTS_REPORTED, UnexpectedAnswer, instant, range_result
from incidentctl.devserver import free_port
from incidentctl.localhttp import serve
from incidentctl.promstack import ServerProcess, start_prometheus
from tests.conftest import eventually
from tests.k8s_sim import SimCluster, start_sim

needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None,
                                      reason="prometheus not installed (bash scripts/setup.sh installs it)")
CART_REPLICAS = 'kube_deployment_spec_replicas{namespace="shop",deployment="cart"}'


# -- conditions ----------------------------------------------------------------------------------------------

def test_conditions_parse_and_read_as_sentences() -> None:
    assert parse_condition("any") == Condition("any")
    assert parse_condition(" none ") == Condition("none")
    assert parse_condition("<= 0.01") == Condition("compare", "<=", 0.01)
    assert parse_condition("==0") == Condition("compare", "==", 0.0)
    assert parse_condition("> -1.5e3") == Condition("compare", ">", -1500.0)
    assert parse_condition("<= 0.01").describe() == "every sample <= 0.01"
    assert parse_condition("none").describe() == "no sample"
    for bad in ("", "some", "=< 1", "< x", "<= 1 and > 0"):
        with pytest.raises(ValueError, match="is not `any`, `none` or a comparison"):
            parse_condition(bad)


def test_the_schema_pattern_accepts_exactly_what_the_parser_does() -> None:
    load_all()
    schema = get_action("prometheus.wait").params_schema
    for text in ("any", "none", "<= 0.01", "==0", "> -1.5e3", "!= 2", "", "some", "=< 1", "< x"):
        try:
            parse_condition(text)
            parsed = True
        except ValueError:
            parsed = False
        assert (params_errors(schema, {"query": "up", "condition": text}) == []) == parsed, text


def test_a_comparison_needs_samples_and_every_one_of_them_to_pass() -> None:
    at_most = parse_condition("<= 0.01")
    assert at_most.holds([0.0, 0.01])
    assert not at_most.holds([0.0, 0.5]), "one sample over the bound"
    assert not at_most.holds([]), "no series matched: nothing says the service recovered"
    assert not at_most.holds([None]), "NaN never passes"
    assert not at_most.holds(["0"]), "text never passes"
    assert parse_condition("any").holds([None]) and not parse_condition("any").holds([])
    assert parse_condition("none").holds([]) and not parse_condition("none").holds([0.0])


# -- answers -------------------------------------------------------------------------------------------------

def test_an_instant_vector_becomes_sorted_bounded_samples_with_the_first_value() -> None:
    data = {"resultType": "vector", "result": [
        {"metric": {"pod": "b"}, "value": [1700000000.1, "2"]},
        {"metric": {"pod": "a"}, "value": [1700000000.1, "1.5"]},
        {"metric": {"pod": "c"}, "value": [1700000000.1, "NaN"]},
        {"metric": {"pod": "d"}, "value": [1700000000.1, "+Inf"]}]}
    answer = instant(data, limit=2)
    assert answer.values == [1.5, 2.0, None, None]
    assert answer.reported == {"result_type": "vector", "count": 4, "truncated": True, "value": 1.5,
                               "samples": [{"labels": {"pod": "a"}, "value": 1.5},
                                           {"labels": {"pod": "b"}, "value": 2.0}]}
    empty = instant({"resultType": "vector", "result": []}, limit=10).reported
    assert empty == {"result_type": "vector", "count": 0, "samples": [], "truncated": False, "value": None}


def test_scalar_and_string_answers_read_as_one_unlabelled_sample() -> None:
    assert instant({"resultType": "scalar", "result": [1.0, "3"]}, 10).reported["samples"] == [
        {"labels": {}, "value": 3.0}]
    assert instant({"resultType": "string", "result": [1.0, "hi"]}, 10).values == ["hi"]


def test_odd_answers_are_refused_with_a_sentence() -> None:
    with pytest.raises(UnexpectedAnswer, match="range vector"):
        instant({"resultType": "matrix", "result": []}, 10)
    with pytest.raises(UnexpectedAnswer, match="unknown result type"):
        instant({"resultType": "histogram", "result": []}, 10)
    with pytest.raises(UnexpectedAnswer, match="not a number"):
        instant({"resultType": "vector", "result": [{"metric": {}, "value": [1, "many"]}]}, 10)
    with pytest.raises(UnexpectedAnswer, match="not a matrix"):
        range_result({"resultType": "vector", "result": []}, 10)


def test_a_range_answer_keeps_the_latest_points_within_the_bound() -> None:
    many = [[float(t), str(t)] for t in range(MAX_POINTS_REPORTED)]
    data = {"resultType": "matrix", "result": [{"metric": {"pod": "b"}, "values": many},
                                               {"metric": {"pod": "a"}, "values": [[5.0, "1"], [6.0, "NaN"]]}]}
    answer = range_result(data, limit=10)
    assert [s["labels"]["pod"] for s in answer["series"]] == ["a", "b"]
    assert answer["series"][0]["points"] == [[5.0, 1.0], [6.0, None]]
    assert len(answer["series"][1]["points"]) == MAX_POINTS_REPORTED - 2
    assert answer["series"][1]["points"][-1] == [float(MAX_POINTS_REPORTED - 1), float(MAX_POINTS_REPORTED - 1)]
    assert answer["truncated"] is True and answer["count"] == 2 and answer["value"] is None
    assert range_result(data, limit=1)["series"] == [answer["series"][0]]


# -- which Prometheus, which token ---------------------------------------------------------------------------

def test_the_step_url_wins_over_the_workers_and_gets_none_of_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_ENV, "http://prometheus.monitoring:9090/")
    monkeypatch.setenv(TOKEN_ENV, "worker-token")
    own = endpoint({})
    assert (own.url, own.token, own.source) == ("http://prometheus.monitoring:9090", "worker-token", URL_ENV)
    chosen = endpoint({"url": "http://elsewhere:9090"})
    assert (chosen.url, chosen.token, chosen.source) == ("http://elsewhere:9090", None, "param")
    monkeypatch.setenv("INCIDENTCTL_OTHER_PROM_TOKEN", "other-token")
    named = endpoint({"url": "http://elsewhere:9090", "token_env": "INCIDENTCTL_OTHER_PROM_TOKEN"})
    assert named.token == "other-token"
    with pytest.raises(ActionError) as refused:
        endpoint({"url": "http://elsewhere:9090", "token_env": "AWS_SECRET_ACCESS_KEY"})
    assert refused.value.type == "SecretNotAllowed" and refused.value.non_retryable
    # The default allow-list (INCIDENTCTL_*) matches the worker's token; it is refused all the same.
    monkeypatch.setenv("INCIDENTCTL_SECRET_ENV_ALLOW", "*")
    with pytest.raises(ActionError) as stolen:
        endpoint({"url": "http://elsewhere:9090", "token_env": TOKEN_ENV})
    assert stolen.value.type == "SecretNotAllowed" and "a secret of the worker itself" in stolen.value.message


def test_no_prometheus_anywhere_is_a_permanent_error_naming_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    with pytest.raises(ActionError) as missing:
        endpoint({"url": None})
    assert missing.value.type == "PrometheusNotConfigured" and missing.value.non_retryable
    assert URL_ENV in missing.value.message and "`url`" in missing.value.message
    monkeypatch.setenv(URL_ENV, "prometheus:9090")
    with pytest.raises(ActionError, match="is not an http:// or https:// URL"):
        endpoint({})


async def test_configured_says_whether_and_where_without_asking_anyone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(URL_ENV, raising=False)
    assert await _run("prometheus.configured", {"url": None}) == {"configured": False, "url": None, "source": None}
    monkeypatch.setenv(URL_ENV, "http://user:secret@prometheus:9090")
    assert await _run("prometheus.configured", {}) == {"configured": True, "url": "http://prometheus:9090",
                                                        "source": URL_ENV}


# -- what goes over the wire, against a stand-in for what Debian's Prometheus cannot do (tokens, huge answers) ----

@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """An HTTP server answering as Prometheus' API does, recording each request's Authorization and form."""
    seen: list[dict[str, str]] = []

    async def query(request: web.Request) -> web.StreamResponse:
        form = dict(await request.post())
        seen.append({"authorization": request.headers.get("Authorization", ""), **form})
        if form["query"] == "forbidden":
            return web.json_response({"status": "error", "errorType": "unauthorized", "error": "no"}, status=401)
        if form["query"] == "huge":
            response = web.StreamResponse()
            await response.prepare(request)
            for _ in range(MAX_ANSWER_BYTES // 65536 + 2):
                await response.write(b" " * 65536)
            await response.write_eof()
            return response
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"job": "api"}, "value": [1.0, "1"]}]}})

    app = web.Application()
    app.router.add_post("/api/v1/query", query)
    runner, url = await serve(app, shutdown_timeout=1)
    yield url, seen
    await runner.cleanup()


async def test_the_token_goes_to_the_workers_prometheus_and_to_no_url_a_runbook_chose(
        stand_in: tuple[str, list[dict[str, str]]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = stand_in
    monkeypatch.setenv(URL_ENV, url)
    monkeypatch.setenv(TOKEN_ENV, "worker-token")
    assert (await _run("prometheus.query", {"query": "up"}))["value"] == 1.0
    assert (await _run("prometheus.query", {"query": "up", "url": url}))["value"] == 1.0
    monkeypatch.setenv("INCIDENTCTL_TEAM_PROM_TOKEN", "team-token")
    await _run("prometheus.wait", {"query": "up", "url": url, "token_env": "INCIDENTCTL_TEAM_PROM_TOKEN"})
    assert [(r["authorization"], r["query"]) for r in seen] == [
        ("Bearer worker-token", "up"), ("", "up"), ("Bearer team-token", "up")]


async def test_a_refused_token_and_an_oversized_answer_fail_for_good(
        stand_in: tuple[str, list[dict[str, str]]]) -> None:
    url, _ = stand_in
    with pytest.raises(ApplicationError) as refused:
        await _run("prometheus.query", {"query": "forbidden", "url": url})
    assert refused.value.type == "PrometheusUnauthorized" and refused.value.non_retryable
    assert "HTTP 401" in refused.value.message and "unauthorized: no" in refused.value.message
    with pytest.raises(ApplicationError) as huge:
        await _run("prometheus.query", {"query": "huge", "url": url})
    assert huge.value.type == "PrometheusAnswerTooLarge" and "narrow it" in huge.value.message


# -- through the wire: Debian's Prometheus scraping the simulated cluster ------------------------------------

@dataclasses.dataclass
class Scraped:
    sim: SimCluster
    prometheus: ServerProcess


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """One simulated cluster (shop/cart crash-looping after a bad rollout) and a Prometheus scraping it every
    second; the series are there once the first scrapes are in."""
    directory = tmp_path_factory.mktemp("prometheus-actions")
    with start_sim(directory / "sim", "bad-rollout") as sim:
        # No Alertmanager: the rules' alerts have nowhere to go, which these tests do not look at.
        prometheus = start_prometheus(directory / "prometheus", sim.url, f"http://127.0.0.1:{free_port()}")
        try:
            yield Scraped(sim, prometheus)
        finally:
            prometheus.stop()


async def _run(name: str, params: dict[str, Any], env: ActivityEnvironment | None = None) -> dict[str, Any]:
    load_all()
    inp = ActionInput(action=name, params=params, incident_id="inc-1", step_id="s1")
    return await (env or ActivityEnvironment()).run(get_action(name).activity, inp)


async def _scraped(url: str) -> dict[str, Any]:
    return await eventually(lambda: _run("prometheus.query", {"url": url, "query": CART_REPLICAS}),
                            lambda answer: answer["count"] == 1, timeout=60, interval=0.5)


@needs_prometheus
async def test_an_instant_query_returns_the_scraped_samples(scraped: Scraped) -> None:
    url = scraped.prometheus.url
    answer = await _scraped(url)
    assert answer["result_type"] == "vector" and answer["value"] == 3.0 and answer["prometheus"] == url
    [sample] = answer["samples"]
    assert sample["labels"]["deployment"] == "cart" and sample["labels"]["job"] == "kube-state-metrics"
    pods = await _run("prometheus.query", {"url": url, "limit": 2,
                                           "query": 'kube_pod_status_phase{namespace="shop",phase="Running"}'})
    assert pods["count"] >= 3 and len(pods["samples"]) == 2 and pods["truncated"] is True
    scalar = await _run("prometheus.query", {"url": url, "query": f"scalar({CART_REPLICAS}) * 2 + 1"})
    assert scalar["result_type"] == "scalar" and scalar["samples"] == [{"labels": {}, "value": 7.0}]
    nan = await _run("prometheus.query", {"url": url, "query": "scalar(no_such_series)"})
    assert nan["value"] is None, "NaN, which JSON cannot carry, reads as null"


@needs_prometheus
async def test_a_range_query_returns_series_with_points(scraped: Scraped) -> None:
    await _scraped(scraped.prometheus.url)
    answer = await eventually(
        lambda: _run("prometheus.query", {"url": scraped.prometheus.url, "query": CART_REPLICAS, "range": "30s",
                                          "step": "1s"}),
        lambda a: a["count"] == 1 and len(a["series"][0]["points"]) >= 2, timeout=30, interval=0.5)
    points = answer["series"][0]["points"]
    assert {value for _, value in points} == {3.0} and points == sorted(points)
    assert answer["result_type"] == "matrix" and answer["value"] == 3.0
    with pytest.raises(ApplicationError) as too_many:
        await _run("prometheus.query", {"url": scraped.prometheus.url, "query": "up", "range": "1d", "step": "1s"})
    assert too_many.value.type == "InvalidParams" and "larger step" in too_many.value.message


@needs_prometheus
async def test_bad_promql_fails_for_good_with_prometheus_own_words(scraped: Scraped) -> None:
    for action, params in (("prometheus.query", {}), ("prometheus.wait", {"timeout": "30s"})):
        with pytest.raises(ApplicationError) as refused:
            await _run(action, {"url": scraped.prometheus.url, "query": "sum(rate(", **params})
        assert refused.value.type == "PromQLError" and refused.value.non_retryable, action
        assert "HTTP 400" in refused.value.message and "bad_data" in refused.value.message
    with pytest.raises(ApplicationError) as ranged:
        await _run("prometheus.query", {"url": scraped.prometheus.url, "query": CART_REPLICAS + "[1m]"})
    assert ranged.value.type == "PromQLError" and "give `range`" in ranged.value.message


async def test_an_unreachable_prometheus_is_a_retryable_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for action in ("prometheus.query", "prometheus.wait"):
        with pytest.raises(ApplicationError) as unreachable:
            await _run(action, {"url": url, "query": "up"})
        assert unreachable.value.type == "PrometheusUnavailable" and not unreachable.value.non_retryable
        assert f"Prometheus at {url} did not answer" in unreachable.value.message


@needs_prometheus
async def test_wait_returns_once_the_condition_held_for_the_whole_window_and_heartbeats_progress(
        scraped: Scraped) -> None:
    await _scraped(scraped.prometheus.url)
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    result = await _run("prometheus.wait", {"url": scraped.prometheus.url, "query": CART_REPLICAS,
                                            "condition": ">= 3", "for": "2s", "interval": "0.5s",
                                            "timeout": "1m"}, env)
    assert result["ok"] is True and result["holds"] is True and result["held_for_s"] >= 2
    assert result["value"] == 3.0 and result["condition"] == "every sample >= 3" and result["polls"] >= 4
    held = [beat["seen"]["held_for_s"] for beat in beats]
    assert held == sorted(held) and held[-1] > 0, "the time held grows while the condition holds"
    assert all(beat["seen"]["value"] == 3.0 and "started" in beat for beat in beats)
    gone = await _run("prometheus.wait", {"url": scraped.prometheus.url, "condition": "none", "interval": "0.5s",
                                          "query": 'kube_deployment_spec_replicas{deployment="no-such-thing"}'})
    assert gone["ok"] is True and gone["count"] == 0


@needs_prometheus
async def test_wait_times_out_with_what_it_last_saw(scraped: Scraped) -> None:
    await _scraped(scraped.prometheus.url)
    with pytest.raises(ApplicationError) as timed_out:
        await _run("prometheus.wait", {"url": scraped.prometheus.url, "query": CART_REPLICAS, "condition": "== 5",
                                       "interval": "0.5s", "timeout": "2s"})
    assert timed_out.value.type == "VerificationFailed" and timed_out.value.non_retryable
    assert timed_out.value.message == (f"{CART_REPLICAS!r} did not hold (every sample == 5) for 0s within 2s: "
                                       "last value 3.0 of 1 samples")
    assert timed_out.value.details[0]["value"] == 3.0 and timed_out.value.details[0]["holds"] is False


async def test_wait_refuses_a_window_longer_than_its_timeout() -> None:
    with pytest.raises(ApplicationError) as refused:
        await _run("prometheus.wait", {"url": "http://127.0.0.1:1", "query": "up", "for": "5m", "timeout": "1m"})
    assert refused.value.type == "InvalidParams" and "must be shorter than timeout" in refused.value.message


@needs_prometheus
async def test_the_deadline_carries_over_from_the_previous_attempt(scraped: Scraped) -> None:
    """A retried wait (worker crash) keeps the first attempt's start: it times out at once here."""
    await _scraped(scraped.prometheus.url)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=[{"started": 1.0, "seen": {}}])
    with pytest.raises(ApplicationError) as late:
        await _run("prometheus.wait", {"url": scraped.prometheus.url, "query": CART_REPLICAS, "condition": "== 5",
                                       "timeout": "10m"}, env)
    assert late.value.type == "VerificationFailed" and late.value.details[0]["polls"] == 1
