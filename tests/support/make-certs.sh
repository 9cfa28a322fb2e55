#!/usr/bin/env bash
# tests/support/make-certs.sh - throwaway TLS certificates for test servers.
#
#   make-certs.sh DIR
#
# Writes into DIR (created if needed), all EC P-256 keys, valid for 7 days:
#   ca.crt, ca.key          a CA that signs the other two;
#   server.crt, server.key  CN=localhost, SAN DNS:localhost, IP:127.0.0.1,
#                           IP:::1 (what tests connect to);
#   client.crt, client.key  CN=aredis-test-client, for mutual TLS.
# EC keys take tens of milliseconds where RSA-2048 takes most of a second.
# Only the openssl command-line tool is needed. Test use only: the keys are
# written unencrypted.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: make-certs.sh DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# sign NAME SUBJECT EXTENSIONS: NAME.key and NAME.crt, signed by the CA.
sign() {
  newkey "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -days 7 -sha256 \
    -set_serial "0x$(openssl rand -hex 16)" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

newkey ca.key
openssl req -x509 -new -key ca.key -sha256 -days 7 -subj "/CN=aredis test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt

sign server "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"

sign client "/CN=aredis-test-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

# redis-server runs as the same user and reads the keys; the certificates
# are public.
chmod 644 ca.crt server.crt client.crt
