"""An MLflow scoring-server compatible app (``/invocations``, ``/ping``, ``/health``, ``/version``).

Request parsing and response rendering are MLflow's own (``mlflow.pyfunc.scoring_server.invocations``),
so clients of ``mlflow models serve`` work unchanged. Every ``/invocations`` response carries the
prediction id in ``X-Pipeshield-Prediction-Id``; the prediction span records the model identity and the
SHA-256 of the request body, never the feature values. An incoming ``traceparent`` header makes the
span a child of the caller's span.
"""

# no ``from __future__ import annotations``: FastAPI must see the real ``Request`` annotation

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pipeshield.lineage import TRACER_NAME, flush
from pipeshield.lineage import attributes as A
from pipeshield.serving._model import VerifiedPyFunc, input_digest, new_prediction_id

_PROPAGATOR = TraceContextTextMapPropagator()


def _invoke(model: VerifiedPyFunc, body: bytes, content_type: str, input_schema: Any,
            headers: dict[str, str], prediction_id: str) -> tuple[str, int, str]:
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    def run() -> tuple[str, int, str]:
        try:
            result = scoring_server.invocations(body, content_type, model.pyfunc, input_schema)
            return result.response, result.status, result.mimetype
        except MlflowException as exc:
            return exc.serialize_as_json(), exc.get_http_status_code(), "application/json"

    if not model.spans:
        return run()
    attributes = model.prediction_attributes(prediction_id, input_digest(body))
    attributes[A.INPUT_CONTENT_TYPE] = content_type.split(";")[0].strip()[:100]
    tracer = trace.get_tracer(TRACER_NAME)
    parent = _PROPAGATOR.extract(headers) if "traceparent" in headers else None
    with tracer.start_as_current_span("pipeshield.predict", context=parent, attributes=attributes,
                                      links=model.links) as span:
        response, status, mimetype = run()
        span.set_attribute(A.HTTP_STATUS, status)
        if status >= 400:
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"HTTP {status}"))
    return response, status, mimetype


def create_app(model: VerifiedPyFunc) -> Any:
    """The FastAPI app serving ``model``."""
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from mlflow.version import VERSION

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        flush()  # uvicorn re-raises SIGTERM after shutdown: no atexit runs, so flush the last spans here

    app = FastAPI(title="pipeshield serve", lifespan=lifespan)
    input_schema = model.metadata.get_input_schema()

    async def ping() -> Response:
        return Response(content="\n", status_code=200, media_type="application/json")

    app.get("/ping")(ping)
    app.get("/health")(ping)

    @app.get("/version")
    async def version() -> Response:
        return Response(content=VERSION, status_code=200, media_type="application/json")

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        body = await request.body()
        prediction_id = new_prediction_id()
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() in ("traceparent", "tracestate")}
        content, status, mimetype = await asyncio.to_thread(
            _invoke, model, body, request.headers.get("content-type", ""), input_schema, headers, prediction_id
        )
        return Response(content=content, status_code=status, media_type=mimetype,
                        headers={A.PREDICTION_HEADER: prediction_id})

    return app


def serve(model: VerifiedPyFunc, host: str = "127.0.0.1", port: int = 5000) -> None:
    """Serve ``model`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(model), host=host, port=port, log_level="warning", access_log=False)
