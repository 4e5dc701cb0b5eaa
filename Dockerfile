# orgauthz: the gRPC authorization sidecar. Build: docker build -t orgauthz .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Only what the server runs, exactly as uv.lock pins it (hash-checked): the envoy extra (Envoy's
# ext_authz stubs, ORGAUTHZ_EXT_AUTHZ=on), no development extras.
COPY requirements/uv.txt requirements/uv.txt
RUN pip install --require-hashes -r requirements/uv.txt
COPY pyproject.toml uv.lock README.md ./
RUN uv export --frozen --no-emit-project --extra envoy --format requirements-txt -q -o /tmp/runtime.txt \
 && pip install --require-hashes -r /tmp/runtime.txt && rm /tmp/runtime.txt && pip uninstall -y uv
COPY src ./src
COPY policies ./policies
RUN pip install --no-deps . && useradd --system --uid 10001 orgauthz

USER orgauthz
# The policies are installed with the package (pyproject.toml maps policies/ into it).
ENV ORGAUTHZ_LISTEN=0.0.0.0:50051 \
    ORGAUTHZ_METRICS_LISTEN=0.0.0.0:9464
EXPOSE 50051 9464

# SERVING once the policies and the store's index are loaded (grpc.health.v1).
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=5 \
  CMD ["python", "-c", "import grpc,sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; ch=grpc.insecure_channel('127.0.0.1:50051'); sys.exit(0 if g.HealthStub(ch).Check(h.HealthCheckRequest(), timeout=2).status == h.HealthCheckResponse.SERVING else 1)"]

ENTRYPOINT ["orgauthz"]
CMD ["serve"]
