#!/usr/bin/env bash
# mlfactory on a real Kubernetes cluster (kind, k3d or a cloud cluster): the checks a person
# runs after changing deploy/helm/. Nothing here runs in CI: no cluster runs on CI machines.
#
#   HUB_IMAGE=registry.example.com/mlfactory-hub:0.1.0 deploy/k8s-smoke.sh
#
# Steps: install (ConfigMap, Secret, helm upgrade --install), log in, spawn each profile
# through the REST API and read its limits back from the pod, a request beyond a profile's
# limits refused with no pod made, stop, and (on a cluster with an autoscaler) user nodes
# scale to zero. Exits non-zero at the first failed check, saying which.
#
# Needs kubectl, helm, curl, python3 (with PyYAML) and a kube context pointing at the cluster.
# Environment:
#   NAMESPACE (mlfactory)  RELEASE (mlfactory)  CHART_VERSION (4.4.0)
#   HUB_IMAGE             the hub image (deploy/helm/Dockerfile.hub), name:tag; required
#   PLATFORM_CONFIG       the platform config (deploy/helm/mlfactory-platform.yaml)
#   EXTRA_VALUES          more values files, space-separated (e.g. your DB and auth)
#   PROFILES              profiles to spawn (default: those without GPUs; add gpu-t4 ... on
#                         a cluster with GPU pools)
#   SCALE_WAIT            seconds to wait for user nodes to reach zero (900; 0 skips: kind
#                         and k3d have no autoscaler)
#   LOCAL_PORT            where the proxy is port-forwarded (8765)
set -euo pipefail

NAMESPACE=${NAMESPACE:-mlfactory}
RELEASE=${RELEASE:-mlfactory}
CHART_VERSION=${CHART_VERSION:-4.4.0}
HERE=$(cd "$(dirname "$0")" && pwd)
PLATFORM_CONFIG=${PLATFORM_CONFIG:-$HERE/helm/mlfactory-platform.yaml}
PROFILES=${PROFILES:-cpu-small cpu-medium cpu-large}
SCALE_WAIT=${SCALE_WAIT:-900}
LOCAL_PORT=${LOCAL_PORT:-8765}
: "${HUB_IMAGE:?set HUB_IMAGE to the hub image built from deploy/helm/Dockerfile.hub}"

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
kc() { kubectl -n "$NAMESPACE" "$@"; }

step "install: ConfigMap, Secret, chart $CHART_VERSION"
kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE"
kc create configmap mlfactory-config --from-file=mlfactory.yaml="$PLATFORM_CONFIG" \
  --dry-run=client -o yaml | kc apply -f -
if ! kc get secret mlfactory-secrets >/dev/null 2>&1; then
  kc create secret generic mlfactory-secrets --from-literal=service-secret="$(openssl rand -hex 32)"
fi
TOKEN=$(openssl rand -hex 32)
SMOKE_VALUES=$(mktemp)
trap 'rm -f "$SMOKE_VALUES"; [ -n "${PF_PID:-}" ] && kill "$PF_PID" 2>/dev/null || true' EXIT
cat >"$SMOKE_VALUES" <<EOF
hub:
  image: {name: "${HUB_IMAGE%:*}", tag: "${HUB_IMAGE##*:}"}
  services:
    smoke: {apiToken: "$TOKEN"}
  loadRoles:
    smoke:
      services: [smoke]
      scopes: [admin:users, admin:servers, list:users, read:users, admin:groups]
EOF
extra=()
for f in ${EXTRA_VALUES:-}; do extra+=(--values "$f"); done
helm repo add jupyterhub https://hub.jupyter.org/helm-chart/ >/dev/null 2>&1 || true
helm upgrade --install "$RELEASE" jupyterhub/jupyterhub --version "$CHART_VERSION" \
  --namespace "$NAMESPACE" --values "$HERE/helm/values-mlfactory.yaml" \
  --values "$SMOKE_VALUES" "${extra[@]}" --wait --timeout 10m
kc rollout status deploy/hub --timeout 5m

step "log in: the hub answers through the proxy"
kc port-forward svc/proxy-public "$LOCAL_PORT:80" >/dev/null 2>&1 &
PF_PID=$!
HUB="http://127.0.0.1:$LOCAL_PORT"
for _ in $(seq 60); do curl -fsS "$HUB/hub/api/" >/dev/null 2>&1 && break; sleep 2; done
curl -fsS "$HUB/hub/login" | grep -qi "login" || fail "no login page at $HUB/hub/login"
api() { curl -sS -H "Authorization: token $TOKEN" "$@"; }
api -f "$HUB/hub/api/user" >/dev/null || fail "the smoke service token is refused"
api -f "$HUB/services/mlfactory/" -o /dev/null || fail "the platform service is not reachable through the proxy"

expected() {  # profile -> "cpu memory_bytes gpus" from the platform config
  python3 - "$PLATFORM_CONFIG" "$1" <<'PY'
import re, sys, yaml
units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9}
config = yaml.safe_load(open(sys.argv[1]))
p = next(p for p in config["profiles"] if p["slug"] == sys.argv[2])
m = re.fullmatch(r"([0-9.]+)([KMGT]i?)?", str(p["memory"]))
print(p["cpu"], int(float(m.group(1)) * units.get(m.group(2), 1)), p.get("gpu", 0))
PY
}

for profile in $PROFILES; do
  user="smoke-$profile"
  step "spawn $profile as $user"
  api -X POST "$HUB/hub/api/users/$user" -o /dev/null || true
  api -X POST "$HUB/hub/api/groups/ml-engineering/users" -d "{\"users\": [\"$user\"]}" -o /dev/null
  code=$(api -o /dev/null -w '%{http_code}' -X POST "$HUB/hub/api/users/$user/server" \
    -d "{\"profile\": \"$profile\"}")
  [ "$code" = 201 ] || [ "$code" = 202 ] || fail "spawn of $profile answered $code"
  ready=""
  for _ in $(seq 150); do
    ready=$(api "$HUB/hub/api/users/$user" | python3 -c \
      'import json,sys; s=json.load(sys.stdin)["servers"].get("",{}); print(s.get("ready",""))')
    [ "$ready" = True ] && break
    sleep 4
  done
  [ "$ready" = True ] || fail "$profile did not become ready in 10 minutes (kc describe pod)"
  pod=$(kc get pods -l "mlfactory.org/profile=$profile,hub.jupyter.org/username=$user" \
    -o jsonpath='{.items[0].metadata.name}')
  read -r cpu mem gpu <<<"$(expected "$profile")"
  resources=$(kc get pod "$pod" -o jsonpath='{.spec.containers[0].resources.limits}')
  echo "limits of $pod: $resources (config: cpu $cpu, memory $mem, gpu $gpu)"
  python3 - "$resources" "$cpu" "$mem" "$gpu" <<'PY' || fail "limits of $pod differ from $profile"
import json, re, sys
lim = json.loads(sys.argv[1])
units = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
def cpu(q): return float(q[:-1]) / 1000 if q.endswith("m") else float(q)
def mem(q): n, u = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", q).groups(); return float(n) * units[u]
assert cpu(lim["cpu"]) == float(sys.argv[2]), lim
assert mem(lim["memory"]) == float(sys.argv[3]), lim
assert int(lim.get("nvidia.com/gpu", 0)) == int(sys.argv[4]), lim
PY
  inside=$(kc exec "$pod" -- cat /sys/fs/cgroup/memory.max 2>/dev/null || echo "?")
  echo "memory limit seen inside the pod: $inside"
  kc exec "$pod" -- id -u | grep -qv '^0$' || fail "$pod runs as root"
  step "stop $profile"
  code=$(api -o /dev/null -w '%{http_code}' -X DELETE "$HUB/hub/api/users/$user/server")
  [ "$code" = 202 ] || [ "$code" = 204 ] || fail "stop answered $code"
  kc wait --for=delete "pod/$pod" --timeout 5m || fail "$pod still there 5 minutes after the stop"
done

step "a request beyond a profile's limits: 400 and no pod"
user="smoke-limits"
api -X POST "$HUB/hub/api/users/$user" -o /dev/null || true
code=$(api -o /dev/null -w '%{http_code}' -X POST "$HUB/hub/api/users/$user/server" \
  -d '{"profile": "cpu-large", "cpu": 999}')
[ "$code" = 400 ] || fail "an out-of-range cpu answered $code, not 400"
[ -z "$(kc get pods -l "hub.jupyter.org/username=$user" -o name)" ] || fail "a pod was made"

if [ "$SCALE_WAIT" -gt 0 ]; then
  step "scale to zero: user nodes go within ${SCALE_WAIT}s"
  deadline=$((SECONDS + SCALE_WAIT))
  while true; do
    n=$(kubectl get nodes -l hub.jupyter.org/node-purpose=user -o name | wc -l)
    echo "user nodes: $n"
    [ "$n" -eq 0 ] && break
    [ "$SECONDS" -lt "$deadline" ] || fail "$n user node(s) left (docs/kubernetes-scale-to-zero.md, 'Check it')"
    sleep 30
  done
else
  echo "scale to zero: skipped (SCALE_WAIT=0)"
fi
step "all checks passed"
