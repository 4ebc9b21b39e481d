#!/bin/sh
# Run by the `artifacts` service of compose/docker-compose.yml (a Maven + JDK 17 image): resolves
# the same pinned artifact lists `cdcctl stack` uses (compose/native/*/pom.xml) into volumes.
#   /out/agent-lib   the Debezium Cassandra agent's classpath          (compose/native/agent)
#   /out/plugins     Connect plugin.path: the Debezium JDBC sink plugin (compose/native/plugins)
#                    and the project's transform built from transforms/
# and creates the agent's state directories on the Cassandra data volume. Idempotent: a stamp of
# the inputs' content skips the work when nothing changed.
#   prepare-artifacts.sh agent41   (the `artifacts41` service, profile cassandra41): only the
#                    Cassandra 4.1 agent (compose/native/agent41) into /out/agent-lib
set -eu

DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1
src=/src
work=/tmp/cass-cdc-pg
stamp_file=/out/plugins/.inputs.sha256

mkdir -p /var/lib/cassandra/cdc-agent/relocation /var/lib/cassandra/cdc-agent/offsets

if [ "${1:-}" = "agent41" ]; then
  stamp41=$(find "$src/compose/native/pom.xml" "$src/compose/native/agent41" -type f -name '*.xml' \
            | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-64)
  if [ -f /out/agent-lib/.inputs.sha256 ] && [ "$(cat /out/agent-lib/.inputs.sha256)" = "$stamp41" ]; then
    echo "agent41 artifacts up to date ($stamp41)"
    exit 0
  fi
  rm -rf "$work"
  mkdir -p "$work"
  cp -R "$src/compose/native" "$work/native"
  echo "resolving the Debezium Cassandra 4.1 agent (compose/native/agent41/pom.xml)"
  rm -rf /out/agent-lib/*
  mvn -B -q -f "$work/native/agent41/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
    -DoutputDirectory=/out/agent-lib
  echo "$stamp41" > /out/agent-lib/.inputs.sha256
  echo "agent41 artifacts ready"
  exit 0
fi

stamp=$(find "$src/compose/native" "$src/transforms/pom.xml" "$src/transforms/src/main" \
          -type f \( -name '*.xml' -o -name '*.java' -o -name '*.properties' \) 2>/dev/null \
        | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-64)
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
  echo "artifacts up to date ($stamp)"
  exit 0
fi

# The sources are mounted read-only; Maven works on a copy.
rm -rf "$work"
mkdir -p "$work"
cp -R "$src/compose/native" "$work/native"
mkdir -p "$work/transforms"
cp -R "$src/transforms/pom.xml" "$src/transforms/src" "$work/transforms/"

echo "resolving the Debezium Cassandra agent (compose/native/agent/pom.xml)"
rm -rf /out/agent-lib/*
mvn -B -q -f "$work/native/agent/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
  -DoutputDirectory=/out/agent-lib

echo "resolving Connect plugins (compose/native/plugins/pom.xml)"
mvn -B -q -f "$work/native/plugins/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
  -DoutputDirectory="$work/plugin-artifacts"
rm -rf /out/plugins/*
mkdir -p /out/plugins/debezium-connector-jdbc /out/plugins/cass-cdc-pg-transforms
# The archive holds one top-level directory with every jar the sink needs.
tar -xzf "$work"/plugin-artifacts/debezium-connector-jdbc-*-plugin.tar.gz \
  -C /out/plugins/debezium-connector-jdbc --strip-components=1

echo "building the project's transform (transforms/pom.xml)"
mvn -B -q -f "$work/transforms/pom.xml" package -DskipTests
cp "$work/transforms/target/cass-cdc-pg-transforms.jar" /out/plugins/cass-cdc-pg-transforms/

echo "$stamp" > "$stamp_file"
echo "artifacts ready"
