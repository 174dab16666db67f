# netmon in a container: `docker build -t netmon .` from the repository root (the build needs
# pyproject.toml and the packages it lists, netmon/, collectors/ and dashboards/, so the root
# is the context and this file lives there), or `docker compose -f deploy/compose.yaml up`,
# which builds it.
#
# Runs as the unprivileged user netmon, with no capabilities. ICMP uses unprivileged datagram
# sockets and the trap port 162 needs no CAP_NET_BIND_SERVICE, because Docker (20.10 and
# later) and Podman set these two sysctls in every container's own network namespace, and
# deploy/compose.yaml sets them explicitly for other runtimes:
#   net.ipv4.ping_group_range=0 2147483647   net.ipv4.ip_unprivileged_port_start=0
# (With --network host they are the host's: set them there, or give CAP_NET_RAW and
# CAP_NET_BIND_SERVICE; netmon logs which ICMP mode it uses.)

# Build: a wheel of netmon and of every dependency, so the final image needs no compiler,
# no pip cache and no source tree.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY netmon netmon
COPY collectors collectors
COPY dashboards dashboards
COPY netmon_lab netmon_lab
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --user-group --home-dir /var/lib/netmon --create-home \
        --shell /usr/sbin/nologin netmon \
    && install -d -o root -g netmon -m 0750 /etc/netmon
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels netmon && rm -rf /wheels

# Alert state and outbox: keep this volume. The root is read-only under deploy/compose.yaml,
# and the config's directory is not netmon's to write anyway: netmon puts a relative
# alerting.database, the default included, in $STATE_DIRECTORY, as under systemd.
VOLUME /var/lib/netmon
ENV STATE_DIRECTORY=/var/lib/netmon
WORKDIR /var/lib/netmon
USER netmon

# 9842: /metrics, the API and the status page (http.listen). 162/udp: SNMP traps
# (trap_receiver.listen), when the config turns the receiver on.
EXPOSE 9842 162/udp

# No curl in the slim image: Python asks netmon's liveness route itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9842/-/healthy', timeout=4)"]

ENTRYPOINT ["netmon"]
CMD ["run", "--config", "/etc/netmon/config.yaml"]
