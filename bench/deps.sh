#!/bin/sh
# Installs the Debian packages `make bench` needs on top of mk/deps.sh:
# PgQ for PostgreSQL 15 (one of the ingest benchmark's anchors).
exec sh "$(dirname "$0")/../mk/deps.sh" postgresql-15-pgq3
