#!/bin/sh
# Sign a query-API URL from the shell with openssl. The key and the query must already be written the one way the
# message needs: percent-encoded (RFC 3986), parameters sorted by name, without fm (the format is not signed).
# Usage: sh sign.sh SECRET 'photos/cat.jpg' 'exp=1900000000&w=300'  ->  /photos/cat.jpg?exp=1900000000&w=300&s=...
set -eu
secret=$1 key=$2 query=$3
signature=$(printf '%s' "/$key?$query" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
printf '/%s?%s&s=%s\n' "$key" "$query" "$signature"
