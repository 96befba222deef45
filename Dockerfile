# indicator-exchange: one image for the one-shot migration and the server (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY indicator_exchange ./indicator_exchange
COPY migrations ./migrations
RUN pip install --no-cache-dir -e .
RUN useradd --system --uid 10001 exchange
USER exchange
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["indicator-exchange", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
