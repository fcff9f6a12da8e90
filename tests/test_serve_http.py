"""``rlseek serve``'s HTTP interface, on servers started in-process on 127.0.0.1: every
endpoint, every kind of bad input, the queue-full 503, and canary rollback (triggered by a
deliberately worse canary, not by an equal one)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import gymnasium as gym
import httpx
import pytest
from serve_fixtures import arith_run, reacher_run, worse_arith_run, worse_reacher_run
from servers import threaded_server

from rlseek.envs.text import heldout_prompts
from rlseek.serving.app import PolicyServer, ServeOptions, create_app
from rlseek.serving.policies import load_policy


@pytest.fixture(scope="module")
def robot_policy() -> Any:
    return load_policy(reacher_run())


@pytest.fixture(scope="module")
def text_policy() -> Any:
    return load_policy(arith_run())


@pytest.fixture(scope="module")
def robot_base(robot_policy: Any) -> Any:
    with threaded_server(create_app(PolicyServer(robot_policy, ServeOptions()))) as base:
        yield base


@pytest.fixture(scope="module")
def text_base(text_policy: Any) -> Any:
    with threaded_server(create_app(PolicyServer(text_policy, ServeOptions()))) as base:
        yield base


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_act_single_and_batch(robot_base: str) -> None:
    one = httpx.post(robot_base + "/v1/act", json={"observation": [0.1] * 10})
    assert one.status_code == 200
    action = one.json()["action"]
    assert len(action) == 2 and all(-1.0 <= a <= 1.0 for a in action)
    many = httpx.post(robot_base + "/v1/act", json={"observations": [[0.1] * 10, [0.0] * 10]}).json()
    assert many["actions"][0] == pytest.approx(action)  # deterministic, batched or not
    assert one.json()["policy"] == "stable" and one.json()["request_id"]


def test_healthz_metrics_and_openapi(robot_base: str) -> None:
    health = httpx.get(robot_base + "/healthz").json()
    assert health["status"] == "ok" and health["policy"]["kind"] == "robot"
    assert health["policy"]["observation_shape"] == [10]
    httpx.post(robot_base + "/v1/act", json={"observation": [0.0] * 10})
    text = httpx.get(robot_base + "/metrics").text
    assert _metric(text, 'rlseek_requests_total{endpoint="/v1/act",status="200"}') >= 1
    for name in ("rlseek_request_latency_seconds_bucket", "rlseek_batch_size", "rlseek_queue_depth",
                 "rlseek_errors_total", "rlseek_canary_active"):
        assert name in text
    spec = httpx.get(robot_base + "/openapi.json").json()
    assert {"/v1/act", "/v1/generate", "/healthz", "/metrics"} <= set(spec["paths"])
    assert "observation" in str(spec["paths"]["/v1/act"]["post"]["requestBody"])
    assert httpx.get(robot_base + "/docs").status_code == 200


@pytest.mark.parametrize("body,status,message", [
    (b'{"observation": [1, 2', 400, "not valid JSON"),
    (b"[1, 2, 3]", 400, "must be a JSON object"),
    (b"", 400, "must be a JSON object"),
    (b'{"observation": [1, 2, 3]}', 422, "has shape [3]; this policy expects [10]"),
    (b'{"observation": [NaN, 0, 0, 0, 0, 0, 0, 0, 0, 0]}', 422, "non-finite"),
    (b'{"observation": [1e999, 0, 0, 0, 0, 0, 0, 0, 0, 0]}', 422, "non-finite"),
    (b'{"observation": ["a", 0, 0, 0, 0, 0, 0, 0, 0, 0]}', 422, "array of numbers"),
    (b'{"observations": []}', 422, "1 to 64 observations"),
    (b'{}', 422, "give 'observation'"),
])
def test_act_bad_input(robot_base: str, body: bytes, status: int, message: str) -> None:
    r = httpx.post(robot_base + "/v1/act", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert message in r.json()["error"] and "\n" not in r.json()["error"]
    assert httpx.post(robot_base + "/v1/act", json={"observation": [0.0] * 10}).status_code == 200


def test_wrong_endpoint_for_the_policy_kind(robot_base: str, text_base: str) -> None:
    r = httpx.post(robot_base + "/v1/generate", json={"prompt": "1+1="})
    assert r.status_code == 422 and "/v1/act" in r.json()["error"]
    r = httpx.post(text_base + "/v1/act", json={"observation": [0.0]})
    assert r.status_code == 422 and "/v1/generate" in r.json()["error"]


def test_generate_single_batch_and_scores(text_base: str) -> None:
    r = httpx.post(text_base + "/v1/generate", json={"prompt": "12+34=", "answer": "46", "score": True})
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body["completion"], str) and isinstance(body["eos"], bool)
    scores = body["scores"]
    assert set(scores["terms"]) == {"accuracy", "diversity", "efficiency"}
    expected = 0.6 * scores["terms"]["accuracy"][0] + 0.3 * scores["terms"]["diversity"][0] + \
        0.1 * scores["terms"]["efficiency"][0]
    assert scores["reward_total"][0] == pytest.approx(expected)
    many = httpx.post(text_base + "/v1/generate",
                      json={"prompts": ["12+34=", "5+7="], "temperature": 1.0}).json()
    assert len(many["completions"]) == 2 and "scores" not in many
    again = httpx.post(text_base + "/v1/generate", json={"prompts": ["12+34=", "5+7="]}).json()
    assert again["completions"][0] == body["completion"]  # greedy: same answer in a batch


@pytest.mark.parametrize("body,message", [
    ({"prompt": "1+" * 200}, "this model allows at most 248 prompt tokens"),
    ({"prompt": ""}, "non-empty string"),
    ({"prompt": 3}, "prompt: Input should be a valid string"),
    ({"prompt": "1+1=", "temperature": -1}, "temperature must be a finite number >= 0"),
    ({"prompts": ["1+1="], "answers": ["2", "3"]}, "'answers' has 2 entries for 1 prompts"),
    ({"prompts": ["1+1="] * 65}, "1 to 64 prompts"),
])
def test_generate_bad_input(text_base: str, body: dict[str, Any], message: str) -> None:
    r = httpx.post(text_base + "/v1/generate", json=body)
    assert r.status_code == 422
    assert message in r.json()["error"]
    assert httpx.post(text_base + "/v1/generate", json={"prompt": "1+1="}).status_code == 200


def test_generate_non_finite_temperature(text_base: str) -> None:
    r = httpx.post(text_base + "/v1/generate", content=b'{"prompt": "1+1=", "temperature": NaN}')
    assert r.status_code == 422 and "finite" in r.json()["error"]


def test_queue_full_answers_503_with_retry_after(text_policy: Any) -> None:
    server = PolicyServer(text_policy, ServeOptions(fixed_batch=1, max_queue=1, queue_batches=1))

    async def flood(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*[
                client.post(base + "/v1/generate", json={"prompt": f"{i}+{i}="}) for i in range(16)])

    with threaded_server(create_app(server)) as base:
        responses = asyncio.run(flood(base))
        codes = [r.status_code for r in responses]
        assert 200 in codes and 503 in codes and set(codes) <= {200, 503}
        full = next(r for r in responses if r.status_code == 503)
        assert int(full.headers["Retry-After"]) >= 1
        assert "queue full" in full.json()["error"]
        assert httpx.post(base + "/v1/generate", json={"prompt": "1+1="}).status_code == 200
        text = httpx.get(base + "/metrics").text
        assert _metric(text, 'rlseek_errors_total{endpoint="/v1/generate",kind="queue_full"}') == codes.count(503)


def _canary_server(stable: Any, canary: Any, **opts: Any) -> PolicyServer:
    options = ServeOptions(canary_window=40, canary_min_samples=10, **opts)
    return PolicyServer(stable, options, canary)


def _arith_requests(base: str, n: int) -> list[dict[str, Any]]:
    held = heldout_prompts("rlseek/Arithmetic-v0", n=n, seed=3)
    return [httpx.post(base + "/v1/generate", json={"prompt": p, "answer": a}, timeout=60).json()
            for p, a in zip(held["prompts"], held["answers"])]


def test_canary_rolls_back_a_worse_policy(text_policy: Any) -> None:
    server = _canary_server(text_policy, load_policy(worse_arith_run()), canary_fraction=0.5)
    with threaded_server(create_app(server)) as base:
        answers = _arith_requests(base, 60)
        health = httpx.get(base + "/healthz").json()["canary"]
        assert health["active"] is False
        assert "canary rolled back" in health["rollback"]
        assert health["means"]["canary"] < 0.95 * health["means"]["stable"]
        text = httpx.get(base + "/metrics").text
        assert _metric(text, "rlseek_canary_rollbacks_total") == 1.0
        assert _metric(text, "rlseek_canary_active") == 0.0
        after = _arith_requests(base, 10)
    assert any(a["policy"] == "canary" for a in answers)
    assert all(a["policy"] == "stable" for a in after)


def test_shadow_keeps_an_equal_canary_and_returns_only_stable_answers(text_policy: Any) -> None:
    server = _canary_server(text_policy, load_policy(arith_run()), canary_fraction=1.0,
                            canary_mode="shadow")
    with threaded_server(create_app(server)) as base:
        answers = _arith_requests(base, 30)
        health = httpx.get(base + "/healthz").json()["canary"]
    assert all(a["policy"] == "stable" for a in answers)
    assert health["active"] is True and health["rollback"] is None
    assert health["samples"]["canary"] >= 10
    assert health["means"]["canary"] == pytest.approx(health["means"]["stable"])


def test_robot_canary_rolls_back_on_client_feedback(robot_policy: Any) -> None:
    server = _canary_server(robot_policy, load_policy(worse_reacher_run()), canary_fraction=0.5)
    env = gym.make("rlseek/Reacher-v0")
    with threaded_server(create_app(server)) as base:
        obs, _ = env.reset(seed=0)
        served = []
        for _ in range(80):
            r = httpx.post(base + "/v1/act", json={"observation": obs.tolist()}).json()
            obs, reward, term, trunc, _ = env.step(r["action"])
            fb = httpx.post(base + "/v1/feedback", json={"request_id": r["request_id"], "value": reward})
            assert fb.status_code == 200 and fb.json()["recorded"] == r["policy"]
            served.append(r["policy"])
            if term or trunc:
                obs, _ = env.reset()
        again = httpx.post(base + "/v1/feedback", json={"request_id": r["request_id"], "value": 1.0})
        health = httpx.get(base + "/healthz").json()["canary"]
    env.close()
    assert again.status_code == 422 and "unknown request_id" in again.json()["error"]
    assert "canary" in served and health["active"] is False
    assert not math.isnan(health["means"]["canary"])


def test_int8_policies_are_smaller_and_answer(robot_policy: Any, text_policy: Any) -> None:
    robot8 = load_policy(reacher_run(), quantize="int8")
    text8 = load_policy(arith_run(), quantize="int8")
    assert robot8.model_bytes < robot_policy.model_bytes  # a 32x32 actor: pickle overhead dominates
    assert text8.model_bytes < 0.5 * text_policy.model_bytes
    obs = robot8.validate([0.1] * 10)
    a8 = robot8.run_batch([obs])[0]["action"]
    a32 = robot_policy.run_batch([obs])[0]["action"]
    assert a8 == pytest.approx(a32, abs=0.1)  # int8 rounding, same policy
    with threaded_server(create_app(PolicyServer(text8, ServeOptions()))) as base:
        assert httpx.get(base + "/healthz").json()["policy"]["quantize"] == "int8"
        r = httpx.post(base + "/v1/generate", json={"prompt": "12+34=", "score": True, "answer": "46"})
    assert r.status_code == 200 and isinstance(r.json()["completion"], str)


def test_quantize_must_be_known(tmp_path: Any) -> None:
    from rlseek.errors import RlseekError

    with pytest.raises(RlseekError, match="--quantize must be one of none, int8"):
        load_policy(reacher_run(), quantize="int4")
