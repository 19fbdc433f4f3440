#!/bin/sh
# Run by the official PostgreSQL image at its first start (an empty data volume), as the
# superuser: creates Musubi's login, which may create roles but is not a superuser, and its
# database (docs/operations.md, "The database login"). MUSUBI_DB_PASSWORD comes from .env.
set -eu
: "${MUSUBI_DB_PASSWORD:?MUSUBI_DB_PASSWORD is not set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=password="$MUSUBI_DB_PASSWORD" <<'SQL'
CREATE ROLE musubi LOGIN CREATEROLE PASSWORD :'password';
CREATE DATABASE musubi OWNER musubi;
SQL
