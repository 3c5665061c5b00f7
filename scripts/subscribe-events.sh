#!/bin/sh
# azd postdeploy hook: subscribe the segment_landed function to BlobCreated events of the segments
# container. It runs after the code is deployed because Event Grid validates a webhook when the
# subscription is made, and the function's endpoint and eventgrid_extension key exist only then.
# Idempotent: a second `azd up` updates the same subscription.
set -eu

command -v az >/dev/null 2>&1 || { echo "subscribe-events: the Azure CLI (az) is required" >&2; exit 1; }

# azd hands a hook its environment's values; read them again in case it was started by hand.
eval "$(azd env get-values)"

key=""
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
for attempt in 1 2 3 4 5 6; do
  key=$(az functionapp keys list -g "$AZURE_RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" \
        --query "systemKeys.eventgrid_extension" -o tsv 2>"$errors" || true)
  [ -n "$key" ] && break
  echo "subscribe-events: waiting for the function's eventgrid_extension key (attempt $attempt)"
  sleep 10
done
if [ -z "$key" ]; then
  echo "subscribe-events: no eventgrid_extension key: is the code deployed? The Azure CLI said:" >&2
  cat "$errors" >&2
  exit 1
fi

az eventgrid system-topic event-subscription create \
  --name segments-landed \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --system-topic-name "$EVENT_GRID_SYSTEM_TOPIC_NAME" \
  --endpoint-type webhook \
  --endpoint "$FUNCTION_APP_URL/runtime/webhooks/eventgrid?functionName=segment_landed&code=$key" \
  --included-event-types Microsoft.Storage.BlobCreated \
  --subject-begins-with "/blobServices/default/containers/$SEGMENTS_CONTAINER/" \
  --max-delivery-attempts 10 \
  --event-ttl 1440 \
  --output none
echo "subscribe-events: BlobCreated events of container $SEGMENTS_CONTAINER now reach segment_landed"
