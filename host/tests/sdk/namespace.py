"""Hold the namespace emulator to the real protocol: publish with the
azure-eventgrid SDK's EventGridPublisherClient in namespace mode, then
receive, renew, acknowledge, release and reject with its
EventGridConsumerClient. Every call must satisfy the SDK (it raises on
anything it cannot read). Prints what it saw as JSON.

Usage: namespace.py <endpoint> <key> <topic> <subscription> <source> [publish-only]
"""

import json
import sys

from azure.core.credentials import AzureKeyCredential
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridConsumerClient, EventGridPublisherClient

endpoint, key, topic, subscription, source = sys.argv[1:6]
credential = AzureKeyCredential(key)
REGISTERED = "Microsoft.MachineLearningServices.ModelRegistered"

publisher = EventGridPublisherClient(endpoint, credential, namespace_topic=topic)
publisher.send(
    [
        CloudEvent(
            id=f"sdk-{i}",
            source=source,
            type=REGISTERED,
            subject=f"models/m:{i}",
            data={"modelName": "m", "modelVersion": str(i)},
        )
        for i in range(4)
    ]
)

if sys.argv[6:] == ["publish-only"]:
    print(json.dumps({"published": 4}))
    sys.exit(0)

consumer = EventGridConsumerClient(
    endpoint, credential, namespace_topic=topic, subscription=subscription
)
first = consumer.receive(max_events=2, max_wait_time=10)
tokens = [d.broker_properties.lock_token for d in first]
renewed = consumer.renew_locks(lock_tokens=tokens)
acked = consumer.acknowledge(lock_tokens=tokens[:1])
released = consumer.release(lock_tokens=tokens[1:], release_delay=0)

second = consumer.receive(max_events=10, max_wait_time=10)
counts = {d.event.id: d.broker_properties.delivery_count for d in second}
rejected = consumer.reject(lock_tokens=[second[0].broker_properties.lock_token])
rest = consumer.acknowledge(
    lock_tokens=[d.broker_properties.lock_token for d in second[1:]]
)
again = consumer.acknowledge(lock_tokens=tokens[:1])

print(
    json.dumps(
        {
            "first": [d.event.id for d in first],
            "first_types": [d.event.type for d in first],
            "renewed": len(renewed.succeeded_lock_tokens),
            "acked": len(acked.succeeded_lock_tokens),
            "released": len(released.succeeded_lock_tokens),
            "second_counts": counts,
            "rejected": len(rejected.succeeded_lock_tokens),
            "rest_acked": len(rest.succeeded_lock_tokens),
            "stale_failed": [f.error.code for f in again.failed_lock_tokens],
        }
    )
)
