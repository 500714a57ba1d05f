#!/usr/bin/env bash
# One stub for every tool the buildspecs call (aws, docker, kubectl, curl, the venv's python):
# it records the call as a tab-separated line in $CALLS and answers as the test configures.
tool="$(basename "$0")"
{ printf '%s' "$tool"; printf '\t%s' "$@"; printf '\n'; } >>"$CALLS"
case "$tool $1 $2" in
  "aws ecr get-login-password") echo "registry-password" ;;
  "aws ecr describe-images")
    # --repository-name R --image-ids imageTag=T: found when R is in $PUSHED_REPOSITORIES
    for pushed in $PUSHED_REPOSITORIES; do [ "$4" = "$pushed" ] && exit 0; done
    echo "ImageNotFoundException" >&2; exit 254 ;;
  "aws kafka get-bootstrap-brokers")
    # As the CLI with --output text: "None" when the cluster has no such string.
    printf '%s\n' "${BOOTSTRAP_BROKERS:-None}"; exit "${KAFKA_STATUS:-0}" ;;
  "docker login"*) cat >/dev/null ;;
  "docker build"*)
    for failing in $FAILING_TARGETS; do
      [[ " $* " == *" --target $failing "* ]] && exit 1
    done ;;
  "kubectl -n"*)
    if [ "$3" = get ]; then printf '%b' "$INGRESS_HOSTNAMES"; fi
    if [ "$3" = rollout ] && [ "$5" = "deployment/$FAILING_ROLLOUT" ]; then exit 1; fi ;;
  "python services/k8s/deploy_overlay.py"*)
    # The real script when the test gives its interpreter: the stage's call must be one it takes.
    if [ -n "$REAL_PYTHON" ]; then exec "$REAL_PYTHON" "$@"; fi ;;
  "python -m"*)
    if [ "$2" = pytest ]; then exit "${PYTEST_STATUS:-0}"; fi
    if [ "$2" = services.bootstrap_database ]; then
      printf 'bootstrap-env\t%s\t%s\t%s\t%s\t%s\n' "$PGHOST" "$PGUSER" "$PGSSLMODE" "$PGSSLROOTCERT" \
        "${PGPASSWORD:+password-set}" >>"$CALLS"
    fi ;;
esac
exit 0
