#!/usr/bin/env bash
# Onboards this gateway: installs Java and the AWS IoT Greengrass nucleus, then starts the nucleus
# with the fleet provisioning plugin, which trades the bundle's claim certificate for the
# gateway's own certificate and thing (@@THING_NAME@@). Run it from the unzipped bundle:
#
#     sudo ./install.sh
#
# Written by `python -m mes_gateway bundle`; see docs/onboarding.md.
set -euo pipefail

ROOT="@@ROOT_PATH@@"
NUCLEUS_VERSION="@@NUCLEUS_VERSION@@"
CLAIM_CERTIFICATE="@@CLAIM_CERTIFICATE@@"
CLAIM_PRIVATE_KEY="@@CLAIM_PRIVATE_KEY@@"
ROOT_CA="@@ROOT_CA@@"
NUCLEUS_ZIP="@@NUCLEUS_ZIP@@"
PLUGIN_JAR="@@PLUGIN_JAR@@"
# The download locations the Greengrass developer guide gives (fleet-provisioning.html).
RELEASES="https://d2s8p88vqu9w66.cloudfront.net/releases"
NUCLEUS_URL="$RELEASES/greengrass-$NUCLEUS_VERSION.zip"
PLUGIN_URL="$RELEASES/aws-greengrass-FleetProvisioningByClaim/fleetprovisioningbyclaim-latest.jar"
BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

fail() {
    echo "install.sh: $*" >&2
    exit 1
}

if [ "$(id -u)" -ne 0 ]; then
    fail "run it as root: sudo ./install.sh"
fi
if [ -e "$ROOT/config/effectiveConfig.yaml" ]; then
    fail "$ROOT already holds a Greengrass core; this bundle is for a blank gateway"
fi
for file in config.yaml "$CLAIM_CERTIFICATE" "$CLAIM_PRIVATE_KEY" "$ROOT_CA"; do
    [ -s "$BUNDLE/$file" ] || fail "the bundle lacks $file: unzip the whole bundle and run again"
done

install_packages() {
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    elif command -v dnf >/dev/null 2>&1; then
        dnf install -y -q "$@"
    elif command -v yum >/dev/null 2>&1; then
        yum install -y -q "$@"
    else
        return 1
    fi
}

# The major version of the java on PATH: "1.8.0_392" is 8, "17.0.9" is 17; 0 when there is none.
java_major() {
    local version
    version="$(java -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n 1)"
    version="${version#1.}"
    version="${version%%[._+-]*}"
    case "$version" in
        '' | *[!0-9]*) echo 0 ;;
        *) echo "$version" ;;
    esac
}

# The nucleus needs a Java runtime, version 8 or later (setting-up.md, device requirements).
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 8 ]; then
    echo "Installing a Java runtime ..."
    if command -v apt-get >/dev/null 2>&1; then
        install_packages default-jre-headless
    else
        install_packages java-11-openjdk-headless
    fi || fail "could not install Java: install a Java runtime 8 or later and run again"
fi
for tool in unzip curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        install_packages "$tool" || fail "could not install $tool: install it and run again"
    fi
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# An offline bundle carries the nucleus and the plugin; otherwise they are downloaded.
# Usage: from_bundle_or_download FILE_IN_BUNDLE TARGET URL WHAT
from_bundle_or_download() {
    if [ -s "$BUNDLE/$1" ]; then
        cp "$BUNDLE/$1" "$2"
    else
        echo "Downloading $4 ..."
        curl -fsSL --retry 3 -o "$2" "$3" ||
            fail "could not download $3 (no internet? use an offline bundle)"
    fi
}
from_bundle_or_download "$NUCLEUS_ZIP" "$WORK/nucleus.zip" "$NUCLEUS_URL" \
    "the Greengrass nucleus $NUCLEUS_VERSION"
from_bundle_or_download "$PLUGIN_JAR" "$WORK/$PLUGIN_JAR" "$PLUGIN_URL" \
    "the fleet provisioning plugin"
unzip -q "$WORK/nucleus.zip" -d "$WORK/nucleus"

# The Greengrass root, its parent readable by the component user, the claim key for root only.
install -d -m 0755 "$ROOT"
chmod 755 "$(dirname "$ROOT")"
install -d -m 0700 "$ROOT/$(dirname "$CLAIM_CERTIFICATE")"
install -m 0644 "$BUNDLE/$CLAIM_CERTIFICATE" "$ROOT/$CLAIM_CERTIFICATE"
install -m 0600 "$BUNDLE/$CLAIM_PRIVATE_KEY" "$ROOT/$CLAIM_PRIVATE_KEY"
install -m 0644 "$BUNDLE/$ROOT_CA" "$ROOT/$ROOT_CA"

echo "Provisioning @@THING_NAME@@ and starting Greengrass ..."
java -Droot="$ROOT" -Dlog.store=FILE \
    -jar "$WORK/nucleus/lib/Greengrass.jar" \
    --trusted-plugin "$WORK/$PLUGIN_JAR" \
    --init-config "$BUNDLE/config.yaml" \
    --component-default-user ggc_user:ggc_group \
    --setup-system-service true

# Provisioned: the gateway now has its own certificate. The claim key served once (the serial is
# used up), so neither the Greengrass root nor the bundle keeps it.
rm -f "$ROOT/$CLAIM_PRIVATE_KEY" "$BUNDLE/$CLAIM_PRIVATE_KEY"
echo "Done: @@THING_NAME@@ runs Greengrass as the 'greengrass' service and receives its line's"
echo "deployment. On the operator's machine: python -m mes_gateway status"
