#!/bin/sh
# The namespace job of docker-compose.temporal.yml (service temporal-create-namespace, image
# temporalio/admin-tools), run once the server is up:
#
# 1. waits until the cluster reports itself healthy;
# 2. makes sure the namespace exists with a retention of at least NAMESPACE_RETENTION_DAYS
#    (30 by default, and never fewer): a closed migration's report is its workflow's result, kept
#    only as long as its history, and `migration start` refuses to run a completed plan again only
#    while that run is kept. A new namespace is created with it; an existing one with a shorter
#    retention is raised to it, one with a longer retention keeps its own;
# 3. registers the Keyword search attributes the Web UI lists runs by (src/shared/search-attributes.ts).
#    Attributes that are already there are fine.
#
# Every step is retried (TRIES times, 2 s apart), and the whole job can run again at any time.
set -eu

NAMESPACE="${NAMESPACE:-default}"
ADDRESS="${TEMPORAL_ADDRESS:-temporal:7233}"
RETENTION_DAYS="${NAMESPACE_RETENTION_DAYS:-30}"
MIN_RETENTION_DAYS=30
TRIES="${TRIES:-60}"

case "$RETENTION_DAYS" in
  '' | *[!0-9]*)
    echo "NAMESPACE_RETENTION_DAYS=$RETENTION_DAYS: expected a whole number of days, at least $MIN_RETENTION_DAYS" >&2
    exit 2
    ;;
esac
if [ "$RETENTION_DAYS" -lt "$MIN_RETENTION_DAYS" ]; then
  echo "NAMESPACE_RETENTION_DAYS=$RETENTION_DAYS: at least $MIN_RETENTION_DAYS days, or closed migrations lose their reports sooner" >&2
  exit 2
fi
RETENTION_SECONDS=$((RETENTION_DAYS * 86400))

# retry WHAT COMMAND...: runs COMMAND until it succeeds, at most TRIES times.
retry() {
  what=$1
  shift
  n=1
  until "$@"; do
    if [ "$n" -ge "$TRIES" ]; then
      echo "gave up after $TRIES tries: $what" >&2
      return 1
    fi
    echo "not yet: $what (try $n of $TRIES)"
    n=$((n + 1))
    sleep 2
  done
}

ensure_namespace() {
  if described=$(temporal operator namespace describe --namespace "$NAMESPACE" --address "$ADDRESS" --output json 2>/dev/null); then
    # "workflowExecutionRetentionTtl": "2592000s"
    current=$(printf '%s' "$described" | tr -d ' \t\r\n' |
      sed -n 's/.*"workflowExecutionRetentionTtl":"\([0-9]*\)[.0-9]*s".*/\1/p')
    if [ -n "$current" ] && [ "$current" -ge "$RETENTION_SECONDS" ]; then
      echo "namespace $NAMESPACE: retention $((current / 86400)) days, kept"
      return 0
    fi
    temporal operator namespace update --namespace "$NAMESPACE" --address "$ADDRESS" --retention "${RETENTION_DAYS}d" &&
      echo "namespace $NAMESPACE: retention raised to $RETENTION_DAYS days"
  else
    temporal operator namespace create --namespace "$NAMESPACE" --address "$ADDRESS" --retention "${RETENTION_DAYS}d" &&
      echo "namespace $NAMESPACE: created, retention $RETENTION_DAYS days"
  fi
}

# Whether the namespace lists all three attributes as Keyword.
has_attributes() {
  listed=$(temporal operator search-attribute list --namespace "$NAMESPACE" --address "$ADDRESS" 2>/dev/null) || return 1
  for name in MigrationPhase PlanName GuardedInstance; do
    printf '%s\n' "$listed" | grep -qiE "(^|[[:space:]])$name[[:space:]]+(INDEXED_VALUE_TYPE_)?Keyword([[:space:]]|$)" || return 1
  done
}

register_attributes() {
  if out=$(temporal operator search-attribute create --namespace "$NAMESPACE" --address "$ADDRESS" \
    --name MigrationPhase --type Keyword \
    --name PlanName --type Keyword \
    --name GuardedInstance --type Keyword 2>&1); then
    echo "namespace $NAMESPACE: search attributes MigrationPhase, PlanName, GuardedInstance (Keyword)"
    return 0
  fi
  printf '%s\n' "$out" >&2
  case "$out" in
    *"already exists"*) has_attributes && echo "namespace $NAMESPACE: search attributes already there" ;;
    *) return 1 ;;
  esac
}

retry "Temporal at $ADDRESS reports itself healthy" temporal operator cluster health --address "$ADDRESS"
retry "namespace $NAMESPACE with $RETENTION_DAYS days of retention" ensure_namespace
retry "search attributes on $NAMESPACE" register_attributes
echo "namespace $NAMESPACE is ready"
