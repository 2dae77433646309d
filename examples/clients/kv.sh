#!/usr/bin/env bash
# The smallest faultline exec client: the faultline KV protocol (DESIGN §4) over curl, for
# the register, cas and set workloads (integer values). Run it as
#   faultline run --target 'exec:examples/clients/kv.sh' --nodes-addr 127.0.0.1:7001,127.0.0.1:7002
# faultline writes one operation per line on stdin; this answers each on stdout.
set -u
read -r -a hosts <<<"$FAULTLINE_HOSTS" # host:port of each node, space-separated
read -r -a names <<<"$FAULTLINE_NODES" # their names: n1 n2 n3
seconds=$(awk "BEGIN { print ${FAULTLINE_OP_TIMEOUT_MS:-1000} / 1000 }")
echo '{"type":"hello","ops":["read","write","cas"]}'

request='^\{"id":([0-9]+),"f":"([a-z]+)","key":"([^"]*)","value":(.*)\}$'
while IFS= read -r line; do
    [[ $line =~ $request ]] || { echo "not an operation: $line" >&2; exit 1; }
    id=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} key=${BASH_REMATCH[3]} value=${BASH_REMATCH[4]}
    host=${hosts[0]}
    if [[ $value =~ ^(.*),\"node\":\"([^\"]*)\"$ ]]; then
        value=${BASH_REMATCH[1]}
        for i in "${!names[@]}"; do [[ ${names[$i]} == "${BASH_REMATCH[2]}" ]] && host=${hosts[$i]}; done
    fi
    url="http://$host/kv/$FAULTLINE_RUN.$key" # the run's own keys: a cluster may hold older ones
    case $f in
    read) out=$(curl -s -m "$seconds" -w '\n%{http_code}' "$url") ;;
    write) out=$(curl -s -m "$seconds" -w '\n%{http_code}' -X PUT -d "{\"value\":$value}" "$url") ;;
    cas)
        [[ $value =~ ^\[(.*),(.*)\]$ ]]
        body="{\"expect\":${BASH_REMATCH[1]},\"value\":${BASH_REMATCH[2]}}"
        out=$(curl -s -m "$seconds" -w '\n%{http_code}' -X POST -d "$body" "$url/cas")
        ;;
    *) echo "{\"id\":$id,\"type\":\"fail\",\"error\":\"no $f here\"}"; continue ;;
    esac
    sent=$?
    status=${out##*$'\n'} body=${out%$'\n'*}
    if ((sent == 7)); then # connection refused: nothing was sent
        echo "{\"id\":$id,\"type\":\"fail\",\"error\":\"refused\"}"
    elif ((sent != 0)); then # timeout or reset: it may have happened
        echo "{\"id\":$id,\"type\":\"info\",\"error\":\"curl exit $sent\"}"
    elif [[ $f == read && $status == 200 && $body =~ \"value\":(-?[0-9]+|null) ]]; then
        echo "{\"id\":$id,\"type\":\"ok\",\"value\":${BASH_REMATCH[1]}}"
    elif [[ $f == read && $status == 404 ]] || [[ $f != read && $status == 200 ]]; then
        echo "{\"id\":$id,\"type\":\"ok\",\"value\":null}"
    elif [[ $f == cas && $status == 412 ]]; then
        echo "{\"id\":$id,\"type\":\"fail\",\"error\":\"mismatch\"}"
    elif [[ $status == 503 || $status == 4* ]]; then
        echo "{\"id\":$id,\"type\":\"fail\",\"error\":\"HTTP $status\"}"
    else
        echo "{\"id\":$id,\"type\":\"info\",\"error\":\"HTTP $status\"}"
    fi
done
