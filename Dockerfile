# syntax=docker/dockerfile:1
# operator-enum in a container, running as an unprivileged user.
#
#   docker build -t operator-enum .
#   docker volume create enum-data
#   docker run --rm -v enum-data:/var/lib/enumserver --entrypoint zonetools operator-enum \
#       --store /var/lib/enumserver/enum.sqlite init            # or: load-example, import ...
#   docker run -d --name enum -v enum-data:/var/lib/enumserver \
#       -p 53:53/udp -p 53:53/tcp -p 127.0.0.1:9153:9153 operator-enum
#   docker kill -s HUP enum       # reload the configuration; docker stop: graceful (SIGTERM)
#
# Port 53 without root or capabilities: Docker (20.10+) sets net.ipv4.ip_unprivileged_port_start=0
# in a container's own network namespace. With --network host that does not apply: mount a
# configuration listening on a port above 1023 at /etc/enumserver/enumserver.toml instead.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY enumserver enumserver
COPY zonetools zonetools
COPY examples/demo examples/demo
RUN python -m venv /opt/enumserver \
    && /opt/enumserver/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM python:3.11-slim
RUN groupadd --system --gid 10053 enumserver \
    && useradd --system --uid 10053 --gid enumserver --home-dir /var/lib/enumserver \
        --no-create-home --shell /usr/sbin/nologin enumserver \
    && install -d -o enumserver -g enumserver -m 0750 /var/lib/enumserver \
    && install -d -m 0755 /etc/enumserver \
    && printf '%s\n' \
        '# operator-enum in a container (docs/configuration.md); mount your own over it.' \
        '[server]' \
        'store = "/var/lib/enumserver/enum.sqlite"' \
        'listen = ["0.0.0.0:53"]' \
        '[metrics]' \
        '# all interfaces inside the container; publish the port on loopback only (-p 127.0.0.1:9153:9153)' \
        'enabled = true' \
        'listen = "0.0.0.0:9153"' \
        '[log]' \
        'format = "json"' \
        'target = "stdout"' \
        > /etc/enumserver/enumserver.toml
COPY --from=build /opt/enumserver /opt/enumserver
ENV PATH=/opt/enumserver/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER enumserver:enumserver
WORKDIR /var/lib/enumserver
VOLUME ["/var/lib/enumserver"]
EXPOSE 53/udp 53/tcp 9153/tcp
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9153/ready', timeout=2)"]
ENTRYPOINT ["enumserver"]
CMD ["serve", "--config", "/etc/enumserver/enumserver.toml"]
