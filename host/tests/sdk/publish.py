"""Publish to a running gridlet with the real Azure and CloudEvents SDKs.

Usage: publish.py <webhook url> <access key> <topic>

Sends, each in its own request:
  eg-key      EventGridEvent through EventGridPublisherClient, aeg-sas-key
  eg-sas      EventGridEvent through EventGridPublisherClient, aeg-sas-token
  ce-azure    CloudEvent (azure.core) through EventGridPublisherClient
  ce-binary   cloudevents SDK, binary mode, Authorization: Bearer
  ce-struct   cloudevents SDK, structured mode, ?access_token=
Every send must be answered 2xx (the SDKs raise otherwise).
"""

import datetime
import json
import sys
import urllib.parse

import requests
from azure.core.credentials import AzureKeyCredential, AzureSasCredential
from azure.core.messaging import CloudEvent as AzureCloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas
from cloudevents.http import CloudEvent, to_binary, to_structured

url, key, topic = sys.argv[1], sys.argv[2], sys.argv[3]
REGISTERED = "Microsoft.MachineLearningServices.ModelRegistered"
DRIFT = "Microsoft.MachineLearningServices.DatasetDriftDetected"


def registered(event_id):
    return EventGridEvent(
        id=event_id,
        subject="models/fraud-gbm:7",
        event_type=REGISTERED,
        data={"modelName": "fraud-gbm", "modelVersion": "7", "modelTags": {"stage": "prod"}},
        data_version="2",
        topic=topic,
    )


EventGridPublisherClient(url, AzureKeyCredential(key)).send([registered("eg-key")])

expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
token = generate_sas(url, key, expiry)
EventGridPublisherClient(url, AzureSasCredential(token)).send([registered("eg-sas")])

EventGridPublisherClient(url, AzureKeyCredential(key)).send(
    [
        AzureCloudEvent(
            id="ce-azure",
            source=topic,
            type=DRIFT,
            subject="datadrift/d1/run/r1",
            data={"dataDriftId": "d1", "runId": "r1", "driftCoefficient": 0.8},
        )
    ]
)


def cloudevent(event_id):
    return CloudEvent(
        {"id": event_id, "source": topic, "type": REGISTERED, "subject": "models/m:1"},
        {"modelName": "m", "modelVersion": "1"},
    )


headers, body = to_binary(cloudevent("ce-binary"))
headers["Authorization"] = "Bearer " + key
requests.post(url, headers=headers, data=body, timeout=10).raise_for_status()

headers, body = to_structured(cloudevent("ce-struct"))
structured = url + "?access_token=" + urllib.parse.quote(key, safe="")
requests.post(structured, headers=headers, data=body, timeout=10).raise_for_status()

print(json.dumps(["eg-key", "eg-sas", "ce-azure", "ce-binary", "ce-struct"]))
