# Sourced by test.sh: starts a tansu broker (Kafka protocol, in-memory storage) on a free loopback
# port for the Kafka tests, exports RIFFLE_KAFKA_BOOTSTRAP, and stops the broker when the
# sourcing shell exits.
tansu_bin=$(scripts/tansu.sh)
export RIFFLE_TANSU="$tansu_bin"
kafka_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
kafka_log="${CARGO_TARGET_DIR:-/tmp}/tansu-$kafka_port.log"
"$tansu_bin" broker \
    --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine memory://tansu/ >"$kafka_log" 2>&1 &
kafka_pid=$!
trap 'kill "$kafka_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if (echo >"/dev/tcp/127.0.0.1/$kafka_port") 2>/dev/null; then
        break
    fi
    if ! kill -0 "$kafka_pid" 2>/dev/null; then
        echo "tansu exited before listening; its log ($kafka_log):" >&2
        cat "$kafka_log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! (echo >"/dev/tcp/127.0.0.1/$kafka_port") 2>/dev/null; then
    echo "tansu did not listen on 127.0.0.1:$kafka_port within 10 s" >&2
    exit 1
fi
export RIFFLE_KAFKA_BOOTSTRAP="127.0.0.1:$kafka_port"
echo "kafka: tansu listening on $RIFFLE_KAFKA_BOOTSTRAP (log: $kafka_log)"
