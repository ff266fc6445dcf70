#!/usr/bin/env bash
# Point an Azure ML workspace's events at a gridlet webhook.
# Needs: az login; SUB, RG, WORKSPACE, GRIDLET_URL (https://host/api/events), GRIDLET_SECRET.
set -euo pipefail
: "${SUB:?}" "${RG:?}" "${WORKSPACE:?}" "${GRIDLET_URL:?}" "${GRIDLET_SECRET:?}"

workspace_id="/subscriptions/$SUB/resourceGroups/$RG/providers/Microsoft.MachineLearningServices/workspaces/$WORKSPACE"

# Event Grid schema; gridlet answers the validation handshake itself.
az eventgrid event-subscription create \
  --name gridlet \
  --source-resource-id "$workspace_id" \
  --endpoint "$GRIDLET_URL?code=$GRIDLET_SECRET" \
  --endpoint-type webhook \
  --included-event-types \
      Microsoft.MachineLearningServices.RunCompleted \
      Microsoft.MachineLearningServices.RunStatusChanged \
      Microsoft.MachineLearningServices.ModelRegistered \
      Microsoft.MachineLearningServices.ModelDeployed \
      Microsoft.MachineLearningServices.DatasetDriftDetected \
  --max-delivery-attempts 30 \
  --event-ttl 1440

# CloudEvents 1.0 instead (gridlet answers the OPTIONS handshake):
#   add --event-delivery-schema cloudeventschemav1_0
# Batching (gridlet accepts up to 5,000 events and body_limit_bytes per request):
#   add --max-events-per-batch 64 --preferred-batch-size-in-kilobytes 1024

echo "Now set allowed_topics (or GRIDLET_ALLOWED_TOPICS) to: $workspace_id"
