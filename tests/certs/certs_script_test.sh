#!/usr/bin/env bash
# Tests certs/egressd-certs end to end with the openssl CLI: every command, every refusal, CRL checking,
# and real mutual-TLS handshakes on 127.0.0.1 (openssl s_server/s_client, each bounded by timeout).
# Prints one "ok N - ..." line per check; the first failed check ends the run with "FAIL: ..." and status 1.
# usage: certs_script_test.sh PATH/TO/egressd-certs
set -euo pipefail

[[ $# -eq 1 && -f $1 ]] || { echo "usage: $0 PATH/TO/egressd-certs" >&2; exit 2; }
script=$(cd -- "$(dirname -- "$1")" && pwd -P)/$(basename -- "$1")

tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf -- "$tmp"
}
trap cleanup EXIT

checks=0
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
pass() { checks=$((checks + 1)); printf 'ok %d - %s\n' "$checks" "$*"; }

# check DESC CMD...: CMD must succeed; its output shows only when it does not.
check() {
  local desc=$1; shift
  "$@" >"$tmp/check" 2>&1 || fail "$desc (command: $*)"$'\n'"$(<"$tmp/check")"
  pass "$desc"
}

# refute DESC CMD...: CMD must fail.
refute() {
  local desc=$1; shift
  ! "$@" >/dev/null 2>&1 || fail "$desc (command succeeded: $*)"
  pass "$desc"
}

# certs EXPECTED_STATUS DESC ARGS...: runs the script with ARGS; its status must be EXPECTED_STATUS. Leaves
# stdout in $out and stderr in $err. No run may ever print a private key.
certs() {
  local want=$1 desc=$2 status=0; shift 2
  "$script" "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
  out=$(<"$tmp/out"); err=$(<"$tmp/err")
  [[ $status -eq $want ]] ||
    fail "$desc: exit status $status, expected $want (egressd-certs $*)"$'\n'"stdout: $out"$'\n'"stderr: $err"
  [[ $out$err != *"PRIVATE KEY"* ]] || fail "$desc: a private key was printed"
  pass "$desc"
}

# contains DESC HAYSTACK NEEDLE
contains() {
  [[ $2 == *"$3"* ]] || fail "$1: expected to find '$3' in:"$'\n'"$2"
  pass "$1"
}
lacks() {
  [[ $2 != *"$3"* ]] || fail "$1: did not expect '$3' in:"$'\n'"$2"
  pass "$1"
}
equals() {
  [[ $2 == "$3" ]] || fail "$1: expected '$3', got '$2'"
  pass "$1"
}

mode() { stat -c %a -- "$1"; }
ext() { openssl x509 -in "$1" -noout -ext "$2" 2>&1 | sed -n '2,$s/^ *//p'; }
subject() { openssl x509 -in "$1" -noout -subject -nameopt RFC2253 | sed 's/^subject=//'; }
serial() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
crl_number() { printf '%d' "$(openssl crl -in "$1" -noout -crlnumber | sed 's/^crlNumber=//')"; }
# verify DIR CERT [openssl verify options]: with the CA's CRL checked for every certificate of the chain.
verify() {
  local dir=$1 cert=$2; shift 2
  openssl verify -CAfile "$dir/ca.pem" -crl_check_all -CRLfile "$dir/crl.pem" "$@" "$dir/$cert.pem" 2>&1
}

# tls DIR SERVER [CLIENT]: one mutual-TLS exchange on 127.0.0.1. s_server (port 0: the kernel picks one,
# s_server prints it) requires a client certificate and checks it against the CA and its CRL; s_client
# checks the server's certificate for localhost and 127.0.0.1 and sends a request. With -www the server
# answers with a page naming the client certificate, which it only does after accepting it.
# Sets tls_client (s_client's output) and tls_server (s_server's).
tls() {
  local dir=$1 server=$2 client=${3:-} log=$tmp/tls.$checks port=""
  timeout 20 openssl s_server -accept 127.0.0.1:0 -naccept 1 -www \
    -cert "$dir/$server.pem" -key "$dir/$server.key" \
    -Verify 1 -verify_return_error -CAfile "$dir/ca.pem" -crl_check_all -CRL "$dir/crl.pem" \
    </dev/null >"$log.server" 2>&1 &
  local spid=$!
  pids+=("$spid")
  for _ in $(seq 100); do
    port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$log.server")
    [[ -z $port ]] || break
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $port ]] || fail "s_server did not start: $(cat "$log.server")"
  local -a cert=()
  [[ -z $client ]] || cert=(-cert "$dir/$client.pem" -key "$dir/$client.key")
  printf 'GET / HTTP/1.0\r\n\r\n' |
    timeout 20 openssl s_client -connect "127.0.0.1:$port" -ign_eof -CAfile "$dir/ca.pem" -verify_return_error \
      -verify_hostname localhost -verify_ip 127.0.0.1 "${cert[@]}" >"$log.client" 2>&1 || true
  # -naccept 1: s_server ends after this connection; the kill only matters when it does not.
  for _ in $(seq 50); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  pids=()  # reaped: its PID may be reused, so cleanup must not kill it
  tls_client=$(<"$log.client")
  tls_server=$(<"$log.server")
}

pki=$tmp/nested/pki  # neither directory exists yet

echo "# usage"
certs 0 "--help exits 0" --help
contains "--help prints usage on stdout" "$out" "egressd-certs server DIR NAME [--ip IP]... [--dns HOST]..."
certs 2 "no arguments exit 2"
contains "no arguments: usage on stderr" "$err" "usage:"
certs 2 "an unknown command exits 2" frobnicate "$pki"
contains "unknown command: usage on stderr" "$err" "usage:"
certs 2 "server without NAME exits 2" server "$pki"
certs 2 "ca with two arguments exits 2" ca "$pki" extra
[[ ! -e $tmp/nested ]] || fail "a usage error created files"

echo "# ca"
certs 0 "ca makes a CA in a directory that does not exist" ca "$pki"
equals "ca: nothing on stdout" "$out" ""
contains "ca: says what it wrote" "$err" "wrote $pki/ca.pem"
for f in ca.pem ca.key crl.pem .ca/openssl.cnf .ca/index.txt; do check "ca: $f exists" test -f "$pki/$f"; done
equals "ca: DIR has mode 700" "$(mode "$pki")" 700
equals "ca: ca.key has mode 600" "$(mode "$pki/ca.key")" 600
equals "ca: subject" "$(subject "$pki/ca.pem")" "CN=egressd development CA"
contains "ca: basicConstraints critical CA:TRUE" \
  "$(openssl x509 -in "$pki/ca.pem" -noout -ext basicConstraints)" $'critical\n    CA:TRUE'
equals "ca: keyUsage" "$(ext "$pki/ca.pem" keyUsage)" "Certificate Sign, CRL Sign"
contains "ca: key is EC P-256" "$(openssl pkey -in "$pki/ca.key" -noout -text_pub)" "NIST CURVE: P-256"
check "ca: valid for more than 9 years" openssl x509 -in "$pki/ca.pem" -noout -checkend $((9 * 365 * 86400))
check "ca: empty CRL signed by the CA" openssl crl -in "$pki/crl.pem" -CAfile "$pki/ca.pem" -noout
contains "ca: CRL has no entries" "$(openssl crl -in "$pki/crl.pem" -noout -text)" "No Revoked Certificates"
contains "ca: CRL has authorityKeyIdentifier" "$(openssl crl -in "$pki/crl.pem" -noout -text)" "X509v3 Authority Key Identifier"
contains "ca: CRL has crlNumber" "$(openssl crl -in "$pki/crl.pem" -noout -text)" "X509v3 CRL Number"
next=$(date -d "$(openssl crl -in "$pki/crl.pem" -noout -nextupdate | sed 's/^nextUpdate=//')" +%s)
now=$(date +%s)
check "ca: CRL nextUpdate is 30 days ahead" test $((next - now)) -gt $((29 * 86400)) -a $((next - now)) -le $((30 * 86400 + 60))

echo "# server"
certs 0 "server with default SANs" server "$pki" proxy
equals "server: one brief line on stderr, openssl quiet" "$(wc -l <<<"$err")" 1
contains "server: message names the file and SANs" "$err" "wrote $pki/proxy.pem (server, CN=proxy, DNS:localhost, IP:127.0.0.1, IP:::1)"
equals "server: default SANs" "$(ext "$pki/proxy.pem" subjectAltName)" "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"
equals "server: EKU serverAuth" "$(ext "$pki/proxy.pem" extendedKeyUsage)" "TLS Web Server Authentication"
equals "server: CA:FALSE" "$(ext "$pki/proxy.pem" basicConstraints)" "CA:FALSE"
equals "server: keyUsage digitalSignature" "$(ext "$pki/proxy.pem" keyUsage)" "Digital Signature"
check "server: has subjectKeyIdentifier" test -n "$(ext "$pki/proxy.pem" subjectKeyIdentifier)"
equals "server: authorityKeyIdentifier is the CA's key id" \
  "$(ext "$pki/proxy.pem" authorityKeyIdentifier)" "$(ext "$pki/ca.pem" subjectKeyIdentifier)"
equals "server: subject" "$(subject "$pki/proxy.pem")" "CN=proxy"
equals "server: key has mode 600" "$(mode "$pki/proxy.key")" 600
contains "server: key is EC P-256" "$(openssl pkey -in "$pki/proxy.key" -noout -text_pub)" "NIST CURVE: P-256"
check "server: valid for 824 days" openssl x509 -in "$pki/proxy.pem" -noout -checkend $((824 * 86400))
refute "server: not valid beyond 825 days" openssl x509 -in "$pki/proxy.pem" -noout -checkend $((825 * 86400 + 3600))
contains "server: verifies for localhost and 127.0.0.1 with CRL checks" \
  "$(verify "$pki" proxy -purpose sslserver -verify_hostname localhost -verify_ip 127.0.0.1)" "proxy.pem: OK"
contains "server: verifies for ::1" "$(verify "$pki" proxy -verify_ip ::1)" "proxy.pem: OK"
lacks "server: does not verify for another host name" "$(verify "$pki" proxy -verify_hostname other.example || true)" ": OK"
lacks "server: is not a client certificate" "$(verify "$pki" proxy -purpose sslclient || true)" ": OK"
certs 0 "server with --ip and --dns" server "$pki" edge --ip 10.1.2.3 --dns proxy.example.org --ip 2001:db8::7 --dns '*.example.org'
equals "server: SANs from the flags only" "$(ext "$pki/edge.pem" subjectAltName)" \
  "DNS:proxy.example.org, DNS:*.example.org, IP Address:10.1.2.3, IP Address:2001:DB8:0:0:0:0:0:7"
contains "server: flag SANs verify" "$(verify "$pki" edge -verify_hostname a.example.org -verify_ip 10.1.2.3)" "edge.pem: OK"

echo "# client"
spiffe=spiffe://example.org/ns/batch/sa/worker
certs 0 "client with --uri and --dns" client "$pki" alice --uri "$spiffe" --dns alice.example.org
contains "client: message names CN and URI" "$err" "wrote $pki/alice.pem (client, CN=alice, DNS:alice.example.org, URI:$spiffe)"
equals "client: subject CN=NAME" "$(subject "$pki/alice.pem")" "CN=alice"
equals "client: SANs" "$(ext "$pki/alice.pem" subjectAltName)" "DNS:alice.example.org, URI:$spiffe"
equals "client: EKU clientAuth" "$(ext "$pki/alice.pem" extendedKeyUsage)" "TLS Web Client Authentication"
equals "client: CA:FALSE" "$(ext "$pki/alice.pem" basicConstraints)" "CA:FALSE"
equals "client: key has mode 600" "$(mode "$pki/alice.key")" 600
certs 0 "client with neither flag" client "$pki" bob
equals "client: no SAN without flags" "$(ext "$pki/bob.pem" subjectAltName)" ""
equals "client: subject CN=bob" "$(subject "$pki/bob.pem")" "CN=bob"
certs 0 "client with two URIs" client "$pki" carol.svc_1 --uri "$spiffe" --uri urn:example:carol
equals "client: two URI SANs" "$(ext "$pki/carol.svc_1.pem" subjectAltName)" "URI:$spiffe, URI:urn:example:carol"
check "serials are distinct" test "$(serial "$pki/alice.pem")" != "$(serial "$pki/bob.pem")"
check "serials are random-length (more than 64 bits)" test "$(serial "$pki/bob.pem" | wc -c)" -gt 17
for c in alice bob carol.svc_1; do
  contains "client: $c verifies as a client with CRL checks" "$(verify "$pki" "$c" -purpose sslclient)" "$c.pem: OK"
done
lacks "client: is not a server certificate" "$(verify "$pki" alice -purpose sslserver || true)" ": OK"

echo "# TLS handshakes on 127.0.0.1"
tls "$pki" proxy alice
contains "tls: client verified the server for localhost/127.0.0.1" "$tls_client" "Verify return code: 0 (ok)"
contains "tls: server accepted alice's certificate" "$tls_client" $'\nClient certificate\n'
contains "tls: server saw CN=alice" "$tls_client" "Subject: CN=alice"
tls "$pki" proxy
lacks "tls: server refuses a client without a certificate" "$tls_client" $'\nClient certificate\n'
contains "tls: server says why" "$tls_server" "peer did not return a certificate"

echo "# revoke"
crl_before=$(crl_number "$pki/crl.pem")
alice_serial=$(serial "$pki/alice.pem")
certs 0 "revoke alice" revoke "$pki" alice
contains "revoke: says so" "$err" "revoked $pki/alice.pem"
contains "revoke: alice is in the CRL" "$(openssl crl -in "$pki/crl.pem" -noout -text)" "Serial Number: $alice_serial"
check "revoke: CRL number went up" test "$(crl_number "$pki/crl.pem")" -gt "$crl_before"
check "revoke: CRL signed by the CA" openssl crl -in "$pki/crl.pem" -CAfile "$pki/ca.pem" -noout
contains "revoke: alice no longer verifies" "$(verify "$pki" alice || true)" "certificate revoked"
contains "revoke: bob still verifies" "$(verify "$pki" bob -purpose sslclient)" "bob.pem: OK"
contains "revoke: the server certificate still verifies" "$(verify "$pki" proxy -purpose sslserver)" "proxy.pem: OK"
tls "$pki" proxy alice
lacks "tls: server refuses revoked alice" "$tls_client" $'\nClient certificate\n'
contains "tls: server says why" "$tls_server" "certificate revoked"
tls "$pki" proxy bob
contains "tls: server still accepts bob" "$tls_client" "Subject: CN=bob"

echo "# crl"
crl_before=$(crl_number "$pki/crl.pem")
certs 0 "crl rewrites the CRL" crl "$pki"
contains "crl: says so" "$err" "wrote $pki/crl.pem (1 revoked"
check "crl: CRL number went up" test "$(crl_number "$pki/crl.pem")" -gt "$crl_before"
contains "crl: alice still revoked" "$(verify "$pki" alice || true)" "certificate revoked"
contains "crl: bob still verifies" "$(verify "$pki" bob)" "bob.pem: OK"

echo "# refusals"
cp -- "$pki/ca.pem" "$tmp/ca.copy"
cp -- "$pki/bob.pem" "$tmp/bob.copy"
certs 1 "ca refuses an existing CA" ca "$pki"
contains "ca refusal: message" "$err" "already exists"
check "ca refusal: ca.pem unchanged" cmp -s "$pki/ca.pem" "$tmp/ca.copy"
certs 1 "client refuses an existing NAME" client "$pki" bob
contains "existing NAME: message" "$err" "bob.pem already exists"
check "existing NAME: bob.pem unchanged" cmp -s "$pki/bob.pem" "$tmp/bob.copy"
certs 1 "server refuses an existing NAME" server "$pki" proxy
for bad in "../x" "a b" "" ".hidden" "-dash" "x/y" "$(printf 'a%.0s' {1..65})" ca crl; do
  certs 2 "refuses NAME '$bad'" client "$pki" "$bad"
done
check "bad names made no files" test ! -e "$tmp/nested/x.pem" -a ! -e "$pki/a b.pem" -a ! -e "$pki/.hidden.pem"
certs 1 "revoke refuses an unknown NAME" revoke "$pki" nobody
contains "unknown NAME: message" "$err" "nobody.pem"
certs 1 "revoke refuses a revoked NAME" revoke "$pki" alice
certs 2 "refuses --dns with config syntax" server "$pki" s1 --dns "a\$b.example"
certs 2 "refuses --uri with a #" client "$pki" c1 --uri 'spiffe://x/y#z'
certs 2 "refuses --ip that is no address" server "$pki" s2 --ip not-an-ip
certs 2 "refuses --ip for a client" client "$pki" c2 --ip 127.0.0.1
certs 2 "refuses an unknown option" client "$pki" c3 --email a@b
certs 2 "refuses a missing option value" client "$pki" c4 --uri
certs 1 "client refuses a directory without a CA" client "$tmp/nothing" dave
certs 1 "crl refuses a directory without a CA" crl "$tmp/nothing"
check "refusals made no files" test ! -e "$tmp/nothing" -a ! -e "$pki/s1.pem" -a ! -e "$pki/c1.key"

echo "# relative DIR from other working directories"
mkdir -p "$tmp/work/sub" "$tmp/elsewhere"
(cd "$tmp/work" && "$script" ca "rel pki") 2>/dev/null || fail "ca with a relative DIR (with a space)"
pass "ca with a relative DIR"
(cd "$tmp/work/sub" && "$script" client "../rel pki" dave --uri "$spiffe") 2>/dev/null || fail "client with ../DIR"
pass "client with ../DIR"
(cd "$tmp/work/rel pki" && "$script" server . proxy) 2>/dev/null || fail "server with DIR ."
pass "server with DIR ."
(cd "$tmp/elsewhere" && "$script" revoke "../work/rel pki" dave) 2>/dev/null || fail "revoke with a relative DIR"
pass "revoke with a relative DIR"
rel=$tmp/work/rel\ pki
contains "relative: dave revoked" "$(verify "$rel" dave || true)" "certificate revoked"
contains "relative: proxy verifies" "$(verify "$rel" proxy)" "proxy.pem: OK"
mv -- "$rel" "$tmp/moved"
certs 0 "a CA directory still works after a move" client "$tmp/moved" erin
contains "moved: erin verifies" "$(verify "$tmp/moved" erin)" "erin.pem: OK"
lacks "other CA: its certificates do not verify against the first CA" \
  "$(openssl verify -CAfile "$pki/ca.pem" "$tmp/moved/erin.pem" 2>&1 || true)" ": OK"
cp -- "$tmp/moved/erin.pem" "$pki/foreign.pem"
certs 1 "revoke refuses a certificate of another CA" revoke "$pki" foreign
contains "foreign: message" "$err" "not issued by the CA"

echo "PASS: $checks checks"
