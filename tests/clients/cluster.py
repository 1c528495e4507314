"""Test helpers: real Redis Clusters (cluster mode, primaries with replicas,
optionally TLS-only with a password, like an ElastiCache cluster with
in-transit encryption and an AUTH token), throwaway certificates made with
openssl, and keyway / Envoy processes in front of them.

Every process is started on a free port inside a scratch directory that the
caller owns; `Procs.stop()` kills them all (the fixtures call it in
`finally`), so a failing test leaves nothing running.
"""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
KEYWAY = os.environ.get("KEYWAY_BIN", str(ROOT / "target" / "release" / "keyway"))

def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports below the kernel's ephemeral range (and their bus ports too): an
# outgoing connection's source port or its TIME_WAIT remains can then never
# sit on a port a test server is about to listen on.
_LOW = 10000
_HIGH = max(_ephemeral_low() - 10000, _LOW + 1000)
_next_port = [_LOW + (os.getpid() * 37) % (_HIGH - _LOW)]


def free_port():
    """A port that is free now and (within this process) never handed out
    twice; Redis Cluster also needs port + 10000 for its bus."""
    while True:
        _next_port[0] += 1
        p = _next_port[0]
        if p >= _HIGH:
            _next_port[0] = _LOW
            continue
        ok = True
        for q in (p, p + 10000):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
        if ok:
            return p


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {port}")


class Procs:
    """Processes a test started; stop() kills every one still running."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.procs = []

    def start(self, args, name, env=None):
        log = open(self.tmp / f"{name}.log", "wb")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp, env=env)
        p.log_path = self.tmp / f"{name}.log"
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                except ProcessLookupError:
                    pass
                p.kill()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


# ---------------------------------------------------------------- certificates

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(dir, name):
    """A throwaway CA: returns (cert path, key path)."""
    dir = Path(dir)
    key, crt = dir / f"{name}.key", dir / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(crt), cwd=dir)
    return crt, key


def make_cert(dir, name, ca, client=False):
    """A certificate signed by `ca` for 127.0.0.1 / localhost."""
    dir = Path(dir)
    key, csr, crt = dir / f"{name}.key", dir / f"{name}.csr", dir / f"{name}.crt"
    ext = dir / f"{name}.ext"
    usage = "clientAuth" if client else "serverAuth,clientAuth"
    ext.write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(csr), cwd=dir)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt), cwd=dir)
    return crt, key


class Tls:
    """The CA, server and client certificates of one test module."""

    def __init__(self, dir):
        self.dir = Path(dir)
        self.ca = make_ca(dir, "ca")
        self.server = make_cert(dir, "server", self.ca)
        self.client = make_cert(dir, "client", self.ca, client=True)
        self.other_ca = make_ca(dir, "other-ca")


# --------------------------------------------------------------- redis cluster

class Cluster:
    """A Redis Cluster in cluster mode: `primaries` primaries, each with
    `replicas` replicas, slots split evenly. TLS-only with `tls`, AUTH with
    `password`."""

    def __init__(self, procs, name, primaries=2, replicas=1, tls=None, password=None, ports=None):
        self.procs = procs
        self.name = name
        self.tls = tls
        self.password = password
        self.nodes = {}  # port -> Popen
        n = primaries * (1 + replicas)
        self.ports = ports or [free_port() for _ in range(n)]
        for port in self.ports:
            self.start_node(port)
        for port in self.ports:
            wait_port(port)
        prim = self.ports[:primaries]
        per = 16384 // primaries
        for i, port in enumerate(prim):
            first, last = i * per, (16383 if i == primaries - 1 else (i + 1) * per - 1)
            self.client(port).execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        c0 = self.client(self.ports[0])
        for port in self.ports[1:]:
            c0.execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        self.wait(lambda: all(len(self.nodes_of(p)) == n for p in self.ports), "nodes meet")
        for i, port in enumerate(self.ports[primaries:]):
            primary = prim[i % primaries]
            pid = self.node_id(primary)
            self.wait_call(lambda: self.client(port).execute_command("CLUSTER", "REPLICATE", pid))
        self.wait_ok()
        self.primaries = prim
        self.replicas = self.ports[primaries:]
        # CLUSTER SLOTS lists a replica only once gossip says it is up.
        self.wait(lambda: all(self.slots_complete(p, 1 + replicas) for p in self.ports),
                  "CLUSTER SLOTS to list every replica")

    def slots_complete(self, port, per_range):
        try:
            slots = self.client(port).execute_command("CLUSTER", "SLOTS")
        except redis.RedisError:
            return False
        return bool(slots) and all(len(r) - 2 == per_range for r in slots)

    def start_node(self, port):
        d = self.procs.tmp / f"{self.name}-{port}"
        d.mkdir(exist_ok=True)
        args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--cluster-enabled", "yes", "--cluster-config-file", str(d / "nodes.conf"),
                "--cluster-node-timeout", "1500", "--dir", str(d),
                "--cluster-replica-validity-factor", "0"]
        if self.tls:
            args += ["--port", "0", "--tls-port", str(port),
                     "--tls-cert-file", str(self.tls.server[0]),
                     "--tls-key-file", str(self.tls.server[1]),
                     "--tls-ca-cert-file", str(self.tls.ca[0]),
                     "--tls-cluster", "yes", "--tls-replication", "yes",
                     "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(port)]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        self.nodes[port] = self.procs.start(args, f"{self.name}-{port}")

    def client(self, port, **kw):
        opts = dict(host="127.0.0.1", port=port, password=self.password,
                    socket_timeout=5, decode_responses=True, protocol=2)
        if self.tls:
            opts.update(ssl=True, ssl_ca_certs=str(self.tls.ca[0]))
        opts.update(kw)
        return redis.Redis(**opts)

    def cluster_client(self):
        """redis-py's cluster-aware client (follows MOVED, knows slots)."""
        alive = [p for p in self.ports if self.nodes[p].poll() is None]
        opts = dict(host="127.0.0.1", port=alive[0], password=self.password,
                    decode_responses=True, socket_timeout=5)
        if self.tls:
            opts.update(ssl=True, ssl_ca_certs=str(self.tls.ca[0]))
        return redis.RedisCluster(**opts)

    def nodes_of(self, port):
        try:
            return [l for l in self.client(port).execute_command("CLUSTER", "NODES").splitlines() if l]
        except redis.RedisError:
            return []

    def node_id(self, port):
        return self.client(port).execute_command("CLUSTER", "MYID")

    def info(self, port):
        return self.client(port).execute_command("CLUSTER", "INFO")

    def wait(self, cond, what, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if cond():
                return
            time.sleep(0.1)
        raise RuntimeError(f"cluster {self.name}: timed out waiting for {what}")

    def wait_call(self, f, timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                return f()
            except redis.RedisError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def wait_ok(self, ports=None):
        ports = ports or self.ports

        def ok():
            for p in ports:
                try:
                    if "cluster_state:ok" not in self.info(p):
                        return False
                except redis.RedisError:
                    return False
            # Every replica has finished its first sync.
            for p in ports:
                try:
                    rep = self.client(p).info("replication")
                except redis.RedisError:
                    return False
                if rep.get("role") == "slave" and rep.get("master_link_status") != "up":
                    return False
            return True

        self.wait(ok, "cluster_state:ok and replicas in sync")

    def keys(self):
        """Every key of the cluster with its type and value, read from the
        primaries."""
        out = {}
        for p in self.current_primaries():
            c = self.client(p)
            for k in c.scan_iter(count=1000):
                out[k] = dump(c, k)
        return out

    def current_primaries(self):
        out = []
        for p, proc in self.nodes.items():
            if proc.poll() is not None:
                continue
            try:
                if self.client(p).info("replication").get("role") == "master":
                    out.append(p)
            except redis.RedisError:
                pass
        return out

    def seeds_toml(self):
        return ", ".join(f'"127.0.0.1:{p}"' for p in self.primaries)


def dump(c, k):
    t = c.type(k)
    if t == "string":
        return (t, c.get(k))
    if t == "hash":
        return (t, c.hgetall(k))
    if t == "list":
        return (t, c.lrange(k, 0, -1))
    if t == "set":
        return (t, sorted(c.smembers(k)))
    if t == "zset":
        return (t, c.zrange(k, 0, -1, withscores=True))
    return (t, None)


# ---------------------------------------------------------------------- keyway

class Keyway:
    def __init__(self, procs, config, name="keyway", cores=1):
        self.port = free_port()
        self.admin = free_port()
        self.cfg = procs.tmp / f"{name}.toml"
        self.cfg.write_text(
            config.replace("{PORT}", str(self.port)).replace("{ADMIN}", str(self.admin))
            .replace("{CORES}", str(cores)).replace("{DIR}", str(procs.tmp)))
        self.proc = procs.start([KEYWAY, "--config", str(self.cfg)], name)
        wait_port(self.port)

    def log(self):
        return Path(self.proc.log_path).read_text(errors="replace")

    def client(self, **kw):
        opts = dict(host="127.0.0.1", port=self.port, socket_timeout=10, decode_responses=True)
        opts.update(kw)
        return redis.Redis(**opts)

    def admin_get(self, path):
        import json
        import urllib.request
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.admin}{path}", timeout=5).read()
        return json.loads(body) if path != "/metrics" else body.decode()


# ----------------------------------------------------------------------- envoy

def envoy_yaml(port, clusters, mirrors=(), exclude_read_commands=False):
    """Envoy's redis_proxy in front of Redis Clusters (`envoy.clusters.redis`):
    `clusters` maps names to `Cluster`s, the first is the catch-all route;
    `mirrors` names the clusters writes are mirrored to. TLS and AUTH follow
    each cluster's own settings."""
    def one(name, c):
        eps = "".join(
            f"        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n"
            for p in c.primaries)
        extra = ""
        if c.tls:
            extra += f"""    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context:
            trusted_ca: {{ filename: "{c.tls.ca[0]}" }}
"""
        if c.password:
            extra += f"""    typed_extension_protocol_options:
      envoy.filters.network.redis_proxy:
        "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions
        auth_password: {{ inline_string: "{c.password}" }}
"""
        return f"""  - name: {name}
    connect_timeout: 1s
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.redis
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.redis.v3.RedisClusterConfig
        cluster_refresh_rate: 5s
        cluster_refresh_timeout: 3s
{extra}    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
{eps}"""
    excl = "\n                exclude_read_commands: true" if exclude_read_commands else ""
    mirror = "".join(f"              - cluster: {m}{excl}\n" for m in mirrors)
    mirror_block = f"              request_mirror_policy:\n{mirror}" if mirrors else ""
    main = next(iter(clusters))
    return f"""static_resources:
  listeners:
  - name: redis
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: redis
          settings: {{ op_timeout: 5s, enable_redirection: true, enable_hashtagging: true }}
          prefix_routes:
            catch_all_route:
              cluster: {main}
{mirror_block}  clusters:
{"".join(one(n, c) for n, c in clusters.items())}"""
