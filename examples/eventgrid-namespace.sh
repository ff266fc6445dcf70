#!/usr/bin/env bash
# Pull delivery: route an Azure ML workspace's events into an Event Grid
# namespace topic, which gridlet pulls from over outbound HTTPS (no public
# endpoint needed). Needs: az login (CLI 2.56 or later, for namespaces);
# SUB, RG, LOCATION, WORKSPACE, NAMESPACE.
# Written from the Event Grid docs and `az ... --help`; not run here (no
# Azure in this project's CI): check the flags against your CLI version.
set -euo pipefail
: "${SUB:?}" "${RG:?}" "${LOCATION:?}" "${WORKSPACE:?}" "${NAMESPACE:?}"

workspace_id="/subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.MachineLearningServices/workspaces/$WORKSPACE"
namespace_id="/subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.EventGrid/namespaces/$NAMESPACE"

# 1. The namespace, a topic (CloudEvents 1.0) and a queue subscription for gridlet.
az eventgrid namespace create -g "$RG" -n "$NAMESPACE" -l "$LOCATION"
az eventgrid namespace topic create -g "$RG" --namespace-name "$NAMESPACE" -n ml-events
az eventgrid namespace topic event-subscription create -g "$RG" \
  --namespace-name "$NAMESPACE" --topic-name ml-events -n gridlet \
  --delivery-configuration '{deliveryMode:Queue,queue:{receiveLockDurationInSeconds:60,maxDeliveryCount:10,eventTimeToLive:P1D}}'

# 2. The workspace's system topic, with an identity allowed to send to the namespace topic.
az eventgrid system-topic create -g "$RG" -n "$WORKSPACE-events" -l "$LOCATION" \
  --topic-type Microsoft.MachineLearningServices.Workspaces \
  --source "$workspace_id" --identity systemassigned
principal=$(az eventgrid system-topic show -g "$RG" -n "$WORKSPACE-events" --query identity.principalId -o tsv)
az role assignment create --assignee "$principal" --role "EventGrid Data Sender" \
  --scope "$namespace_id/topics/ml-events"

# 3. Forward the ML events to the namespace topic (CloudEvents is the only schema it takes).
az eventgrid system-topic event-subscription create -g "$RG" \
  --system-topic-name "$WORKSPACE-events" -n to-namespace \
  --event-delivery-schema cloudeventschemav1_0 \
  --delivery-identity systemassigned \
  --delivery-identity-endpoint-type namespacetopic \
  --delivery-identity-endpoint "$namespace_id/topics/ml-events" \
  --included-event-types \
      Microsoft.MachineLearningServices.RunCompleted \
      Microsoft.MachineLearningServices.RunStatusChanged \
      Microsoft.MachineLearningServices.ModelRegistered \
      Microsoft.MachineLearningServices.ModelDeployed \
      Microsoft.MachineLearningServices.DatasetDriftDetected

endpoint="https://$(az eventgrid namespace show -g "$RG" -n "$NAMESPACE" --query topicsConfiguration.hostname -o tsv)"
cat <<CONFIG
Add to gridlet.toml (and export EG_NAMESPACE_KEY from
  az eventgrid namespace list-key -g $RG --namespace-name $NAMESPACE --query key1 -o tsv):

allowed_topics = ["$workspace_id"]

[[pull]]
endpoint = "$endpoint"
topic = "ml-events"
subscription = "gridlet"
key = "\${EG_NAMESPACE_KEY}"
CONFIG
