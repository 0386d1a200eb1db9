"""A minimal reproducer of the librdkafka abort that made the scorer read lag without the
admin client (streams/io/consumer_lag.py).

Run ``python -m bench.librdkafka_admin_abort`` (about 20 s; it starts its own embedded
broker). An ``AdminClient.list_consumer_group_offsets`` request times out while the broker
is stopped (SIGSTOP); when the broker answers again, librdkafka 2.16 aborts the process:
``rdkafka_queue.h:1086: rd_kafka_enq_once_del_source_return: Assertion 'eonce->refcnt >
0' failed`` (librdkafka issue 4605; a fix, PR 5397, is not released). The reproducer runs
in a child process and reports how it ended: aborted means the installed librdkafka still
has the bug (it depends on timing: 2 of 3 runs aborted with librdkafka 2.16.0 here, the
others ended with reads that kept timing out); 0 means it survived.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from confluent_kafka import libversion, version

from streams.services.embedded import KAFKA, free_port, server_argv

CHILD = """
import sys, time
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1], "socket.timeout.ms": 2000})
admin.create_topics([NewTopic("t", 3, 1)])["t"].result()
request = [ConsumerGroupTopicPartitions("g", [TopicPartition("t", p) for p in range(3)])]
def read(wait=2):
    for future in admin.list_consumer_group_offsets(request, request_timeout=wait).values():
        future.result(timeout=wait)
read()
print("ready", flush=True)
sys.stdin.readline()  # the broker is stopped now
for _ in range(3):
    try:
        read()
    except Exception as exc:
        print("timed out:", type(exc).__name__, flush=True)
print("resume", flush=True)
sys.stdin.readline()  # the broker answers again
deadline = time.monotonic() + 15
while time.monotonic() < deadline:  # the timed-out requests are answered meanwhile
    try:
        read(5)
    except Exception as exc:
        print("after the stop:", type(exc).__name__, flush=True)
    time.sleep(0.5)
print("survived", flush=True)
"""


def main() -> int:
    port = free_port()
    broker = subprocess.Popen(server_argv(KAFKA, port), stdout=subprocess.DEVNULL)
    time.sleep(2)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, f"127.0.0.1:{port}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        print(child.stdout.readline().strip())
        os.kill(broker.pid, signal.SIGSTOP)
        child.stdin.write("\n")
        child.stdin.flush()
        while (line := child.stdout.readline().strip()) not in ("resume", ""):
            print(line)
        os.kill(broker.pid, signal.SIGCONT)
        child.stdin.write("\n")
        child.stdin.flush()
        print(child.stdout.read().strip())
        code = child.wait(60)
    finally:
        os.kill(broker.pid, signal.SIGCONT)
        broker.terminate()
        if child.poll() is None:
            child.kill()
    verdict = "ABORTED (the bug is there)" if code == -signal.SIGABRT else f"exit {code}"
    print(f"confluent-kafka {version()}, librdkafka {libversion()[0]}: {verdict}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
