"""The HTTP application: FastAPI routes over the policies, their batchers and the canary router.

Routes: ``POST /v1/act`` (robot policies), ``POST /v1/generate`` (language models),
``POST /v1/feedback`` (a client reports the metric of a robot request it executed),
``GET /healthz``, ``GET /metrics`` (Prometheus text), and FastAPI's ``/docs`` (the OpenAPI page)
with ``/openapi.json``. Every error answer is ``{"error": "<one line>"}``: 400 for a body that is
not JSON, 422 for JSON of the wrong shape or values, 503 with ``Retry-After`` (seconds) when the
queue is full or the server is draining.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field, ValidationError

from rlseek.serving.batcher import Draining, DynamicBatcher, QueueFull
from rlseek.serving.canary import CanaryRouter
from rlseek.serving.pid import BatchSizeController
from rlseek.serving.policies import InputError, RobotPolicy, TextPolicy

log = logging.getLogger("rlseek.serve")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0,
                   2.0, 5.0, 10.0)


@dataclass
class ServeOptions:
    """Batching and canary settings of one server (the CLI flags of ``rlseek serve``)."""

    target_latency_ms: float = 200.0
    min_batch: int = 4
    max_batch: int = 64
    fixed_batch: int | None = None
    """Fix the batch size (no PID), e.g. 1 for the benchmark's baseline."""
    max_queue: int = 256
    queue_batches: int = 2
    kp: float = 0.5
    ki: float = 0.1
    kd: float = 0.05
    canary_fraction: float = 0.1
    canary_mode: str = "canary"
    metric: str = "reward_total"
    rollback_drop: float = 0.05
    canary_window: int = 200
    canary_min_samples: int = 50
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# -- request and response bodies (they make the OpenAPI page) ---------------------------------
class ActRequest(BaseModel):
    """One observation, or a list of them (each as the env's observation space gives it)."""

    observation: Any = Field(None, description="one observation: a (nested) list of numbers, "
                             "or an object of such lists for dict observation spaces")
    observations: list[Any] | None = Field(None, description="several observations, answered in order")


class GenerateRequest(BaseModel):
    """One prompt, or a list of them; optionally reference answers and scoring."""

    prompt: str | None = None
    prompts: list[str] | None = None
    answer: str | None = Field(None, description="reference answer for `prompt` (scored by accuracy)")
    answers: list[str | None] | None = None
    temperature: float = Field(0.0, description="0 = greedy; > 0 samples at this temperature")
    score: bool = Field(False, description="also return every reward term of the env's registry")


class FeedbackRequest(BaseModel):
    """The metric a client measured after executing the action of ``request_id``."""

    request_id: str
    value: float


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rlseek_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.latency = Histogram("rlseek_request_latency_seconds", "Request latency, arrival to answer",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("rlseek_errors", "Failed requests by kind", ["endpoint", "kind"], registry=r)
        self.batch_size = Gauge("rlseek_batch_size", "Current dynamic batch size", ["policy"], registry=r)
        self.queue_depth = Gauge("rlseek_queue_depth", "Items waiting in the queue", ["policy"], registry=r)
        self.batches = Counter("rlseek_batches", "Batches computed", ["policy"], registry=r)
        self.batch_items = Histogram("rlseek_batch_items", "Items per computed batch", ["policy"],
                                     buckets=(1, 2, 4, 8, 16, 32, 48, 64, 128), registry=r)
        self.canary_active = Gauge("rlseek_canary_active", "1 while the canary receives traffic", registry=r)
        self.rollbacks = Counter("rlseek_canary_rollbacks", "Automatic canary rollbacks", registry=r)
        self.canary_metric = Gauge("rlseek_canary_metric_mean", "Rolling mean of the canary metric",
                                   ["policy"], registry=r)
        self.routed = Counter("rlseek_canary_routed", "Requests sent to each policy", ["policy", "role"],
                              registry=r)


class BadJSON(InputError):
    """The request body is not a JSON object (HTTP 400)."""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class PolicyServer:
    """The stable policy, an optional canary, a batcher for each, the router and the metrics."""

    def __init__(self, stable: RobotPolicy | TextPolicy, options: ServeOptions,
                 canary: RobotPolicy | TextPolicy | None = None) -> None:
        self.options = options
        self.metrics = _Metrics()
        self.policies: dict[str, RobotPolicy | TextPolicy] = {"stable": stable}
        if canary is not None:
            if canary.kind != stable.kind:
                from rlseek.errors import RlseekError

                raise RlseekError(f"--canary serves a {canary.kind} policy but the stable run is a "
                                  f"{stable.kind} policy; both must be of the same kind")
            self.policies["canary"] = canary
        self.kind = stable.kind
        self.router = None
        if canary is not None:
            self.router = CanaryRouter(fraction=options.canary_fraction, mode=options.canary_mode,
                                       metric=options.metric, rollback_drop=options.rollback_drop,
                                       window=options.canary_window,
                                       min_samples=options.canary_min_samples, seed=options.seed)
            self.metrics.canary_active.set(1)
        self.batchers: dict[str, DynamicBatcher] = {}
        for name, pol in self.policies.items():
            ctrl = None
            if options.fixed_batch is None:
                ctrl = BatchSizeController(options.target_latency_ms / 1000.0, options.min_batch,
                                           options.max_batch, kp=options.kp, ki=options.ki, kd=options.kd)
            b = DynamicBatcher(pol.run_batch, controller=ctrl, fixed_batch=options.fixed_batch or 1,
                               max_queue=options.max_queue, queue_batches=options.queue_batches,
                               name=name, on_batch=lambda rec, n=name: self._on_batch(n, rec))
            self.batchers[name] = b
            self.metrics.batch_size.labels(name).set_function(lambda b=b: b.batch_size)
            self.metrics.queue_depth.labels(name).set_function(lambda b=b: b.queue_depth)
        self.max_rows = options.max_batch if options.fixed_batch is None else max(options.fixed_batch, options.max_batch)
        self._answered_by: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._background: set[asyncio.Task[Any]] = set()
        self.draining = False

    def _on_batch(self, name: str, rec: Any) -> None:
        self.metrics.batches.labels(name).inc()
        self.metrics.batch_items.labels(name).observe(rec.size)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every batcher's worker (called by the app's lifespan)."""
        for b in self.batchers.values():
            b.start()

    async def drain(self) -> None:
        """Finish every queued request (and shadow copy), then stop the workers."""
        self.draining = True
        for b in self.batchers.values():
            await b.drain()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # -- canary ----------------------------------------------------------------------------
    def _choose(self) -> str:
        if self.router is None or self.router.mode == "shadow":
            return "stable"
        return "canary" if self.router.pick_canary() else "stable"

    def _record(self, policy: str, value: float) -> None:
        if self.router is None:
            return
        event = self.router.record(policy, value)
        self.metrics.canary_metric.labels(policy).set(self.router.windows[policy].mean)
        if event is not None:
            self.metrics.rollbacks.inc()
            self.metrics.canary_active.set(0)

    def _remember(self, request_id: str, policy: str) -> None:
        self._answered_by[request_id] = policy
        while len(self._answered_by) > 10_000:
            self._answered_by.popitem(last=False)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- handlers --------------------------------------------------------------------------
    async def _submit(self, policy: str, rows: list[Any]) -> list[Any]:
        futures = self.batchers[policy].submit_many(rows)
        return list(await asyncio.gather(*futures))

    async def act(self, body: ActRequest) -> dict[str, Any]:
        """Answer ``/v1/act``: validate the observation(s), queue them, return the action(s)."""
        if self.kind != "robot":
            raise InputError("this server serves a language model; use POST /v1/generate")
        single = body.observations is None
        raw = [body.observation] if single else body.observations
        if single and body.observation is None:
            raise InputError("give 'observation' (one) or 'observations' (a list)")
        if not raw or len(raw) > self.max_rows:
            raise InputError(f"'observations' must hold 1 to {self.max_rows} observations, got {len(raw)}")
        policy = self._choose()
        pol = self.policies[policy]
        rows = [pol.validate(o, "observation" if single else f"observations[{i}]") for i, o in enumerate(raw)]
        results = await self._submit(policy, rows)
        if self.router is not None:
            self.metrics.routed.labels(policy, "answer").inc()
            if self.router.mode == "shadow" and self.router.pick_canary():
                self._spawn(self._shadow_act(rows))
        request_id = uuid.uuid4().hex
        self._remember(request_id, policy)
        actions = [r["action"] for r in results]
        out: dict[str, Any] = {"request_id": request_id, "policy": policy}
        out.update({"action": actions[0]} if single else {"actions": actions})
        return out

    async def _shadow_act(self, rows: list[Any]) -> None:
        with contextlib.suppress(QueueFull, Draining):
            await self._submit("canary", rows)
            self.metrics.routed.labels("canary", "shadow").inc()

    async def feedback(self, body: FeedbackRequest) -> dict[str, Any]:
        """Answer ``/v1/feedback``: add the value to the window of the policy that answered."""
        if not math.isfinite(body.value):
            raise InputError("value must be a finite number")
        policy = self._answered_by.pop(body.request_id, None)
        if policy is None:
            raise InputError(f"unknown request_id {body.request_id!r} (unknown, already reported, "
                             "or older than the last 10,000 requests)")
        self._record(policy, body.value)
        return {"recorded": policy}

    async def generate(self, body: GenerateRequest) -> dict[str, Any]:
        """Answer ``/v1/generate``: validate the prompt(s), queue them, return the completion(s),
        scored through the env's reward registry when asked (and always for the canary)."""
        if self.kind != "text":
            raise InputError("this server serves a robot policy; use POST /v1/act")
        single = body.prompts is None
        if single and body.prompt is None:
            raise InputError("give 'prompt' (one) or 'prompts' (a list)")
        prompts = [body.prompt] if single else body.prompts
        answers = [body.answer] if single else (body.answers or [None] * len(prompts))
        if not prompts or len(prompts) > self.max_rows:
            raise InputError(f"'prompts' must hold 1 to {self.max_rows} prompts, got {len(prompts)}")
        if len(answers) != len(prompts):
            raise InputError(f"'answers' has {len(answers)} entries for {len(prompts)} prompts")
        policy = self._choose()
        pol = self.policies[policy]
        rows = [pol.validate(p, a, body.temperature, "prompt" if single else f"prompts[{i}]")
                for i, (p, a) in enumerate(zip(prompts, answers))]
        results = await self._submit(policy, rows)
        out: dict[str, Any] = {"policy": policy}
        texts = [r["completion"] for r in results]
        out.update({"completion": texts[0], "eos": results[0]["eos"]} if single
                   else {"completions": texts, "eos": [r["eos"] for r in results]})
        if body.score or self.router is not None:
            scores = await asyncio.to_thread(pol.score, rows, results)
            if body.score:
                out["scores"] = scores
            if self.router is not None:
                self.metrics.routed.labels(policy, "answer").inc()
                value = self._metric_of(scores)
                if self.router.mode == "canary":
                    self._record(policy, value)
                elif self.router.pick_canary():
                    # shadow: the pair (stable, canary) on the same prompts enters the windows
                    self._spawn(self._shadow_generate(body, prompts, answers, value))
        return out

    def _metric_of(self, scores: dict[str, Any]) -> float:
        name = self.options.metric
        values = scores["reward_total"] if name == "reward_total" else scores["terms"].get(
            name.removeprefix("reward_"), [])
        values = [v for v in values if v is not None and math.isfinite(v)]
        return sum(values) / len(values) if values else math.nan

    async def _shadow_generate(self, body: GenerateRequest, prompts: list[str],
                               answers: list[str | None], stable_value: float) -> None:
        pol = self.policies["canary"]
        try:
            rows = [pol.validate(p, a, body.temperature) for p, a in zip(prompts, answers)]
            results = await self._submit("canary", rows)
        except (InputError, QueueFull, Draining):
            return
        self.metrics.routed.labels("canary", "shadow").inc()
        scores = await asyncio.to_thread(pol.score, rows, results)
        self._record("stable", stable_value)
        self._record("canary", self._metric_of(scores))

    def precheck(self, endpoint: str) -> None:
        """Refuse at once, before the body is parsed and validated, when the stable policy's
        queue is already full: under overload, refusing must cost as little as possible."""
        if endpoint == "/v1/feedback":
            return
        b = self.batchers["stable"]
        if b.queue_depth >= b.capacity:
            raise QueueFull(b.retry_after_s(), f"queue full ({b.queue_depth} of {b.capacity} items waiting)")

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` answers: status, policies, batch size, queue depth, canary state."""
        out: dict[str, Any] = {
            "status": "draining" if self.draining else "ok",
            "policy": self.policies["stable"].describe(),
            "batch_size": {n: b.batch_size for n, b in self.batchers.items()},
            "queue_depth": {n: b.queue_depth for n, b in self.batchers.items()},
            "p95_ms": {n: (None if math.isnan(b.recent_p95()) else b.recent_p95() * 1000)
                       for n, b in self.batchers.items()},
            "target_latency_ms": self.options.target_latency_ms,
        }
        if self.router is not None:
            out["canary"] = {
                "policy": self.policies["canary"].describe(), "mode": self.router.mode,
                "fraction": self.router.fraction, "active": self.router.active,
                "metric": self.router.metric,
                "means": {k: (w.mean if len(w) else None) for k, w in self.router.windows.items()},
                "samples": {k: len(w) for k, w in self.router.windows.items()},
                "rollback": (self.router.rollback.message(self.router.metric, self.router.rollback_drop)
                             if self.router.rollback else None),
            }
        return out


def create_app(server: PolicyServer) -> FastAPI:
    """The FastAPI application serving ``server`` (its batchers start and drain with the app)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.drain()

    app = FastAPI(title="rlseek serve", version="1", lifespan=lifespan,
                  description="Serves the final policy of an rlseek run with dynamic batching.")
    m = server.metrics

    async def _handle(endpoint: str, fn: Any, body: Any) -> Any:
        t0 = time.perf_counter()
        try:
            if server.draining:
                raise Draining("the server is shutting down")
            server.precheck(endpoint)
            result, status = await fn(body), 200
        except BadJSON as exc:
            result, status = _error(400, str(exc)), 400
            m.errors.labels(endpoint, "bad_input").inc()
        except InputError as exc:
            result, status = _error(422, str(exc)), 422
            m.errors.labels(endpoint, "bad_input").inc()
        except QueueFull as exc:
            retry = str(max(1, math.ceil(exc.retry_after_s)))
            result, status = _error(503, f"{exc}; retry after {retry} s", {"Retry-After": retry}), 503
            m.errors.labels(endpoint, "queue_full").inc()
        except Draining as exc:
            result, status = _error(503, str(exc), {"Retry-After": "1"}), 503
            m.errors.labels(endpoint, "draining").inc()
        except Exception as exc:  # a bug in a batch: answer 500, keep serving
            log.exception("request to %s failed", endpoint)
            result, status = _error(500, f"internal error: {type(exc).__name__}: {exc}"), 500
            m.errors.labels(endpoint, "internal").inc()
        m.requests.labels(endpoint, str(status)).inc()
        m.latency.labels(endpoint).observe(time.perf_counter() - t0)
        return result

    async def _parse(request: Request, model: type[BaseModel]) -> BaseModel:
        # Parsed here rather than by FastAPI so that a body is read as JSON whatever its
        # Content-Type, and every problem becomes one line.
        raw = await request.body()
        try:
            obj = json.loads(raw) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadJSON(f"request body is not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise BadJSON(f"request body must be a JSON object, got {type(obj).__name__ if obj is not None else 'nothing'}")
        try:
            return model.model_validate(obj)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(x) for x in e.get("loc", ())) or "body"
            raise InputError(f"{where}: {e.get('msg', 'invalid')}") from None

    def _route(path: str, fn: Any, model: type[BaseModel], summary: str) -> None:
        async def endpoint(request: Request) -> Any:
            async def call(req: Request) -> Any:
                return await fn(await _parse(req, model))

            return await _handle(path, call, request)

        schema = {"requestBody": {"required": True, "content": {
            "application/json": {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}}}}
        app.add_api_route(path, endpoint, methods=["POST"], summary=summary, openapi_extra=schema)

    _route("/v1/act", server.act, ActRequest, "Robot policy: observation(s) -> action(s)")
    _route("/v1/generate", server.generate, GenerateRequest, "Language model: prompt(s) -> completion(s)")
    _route("/v1/feedback", server.feedback, FeedbackRequest,
           "Report the metric of an executed /v1/act answer (canary)")

    @app.get("/healthz", summary="Liveness, the served policies and the canary state")
    async def healthz() -> Any:
        return server.health()

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    return app
