# azd postdeploy hook (Windows): the same as subscribe-events.sh, which says why it runs after deploy.
$ErrorActionPreference = 'Stop'
foreach ($line in (azd env get-values)) {
  if ($line -match '^([^=]+)="?(.*?)"?$') { Set-Item -Path "env:$($Matches[1])" -Value $Matches[2] }
}
$key = ''
foreach ($attempt in 1..6) {
  $key = az functionapp keys list -g $env:AZURE_RESOURCE_GROUP -n $env:AZURE_FUNCTION_APP_NAME `
    --query 'systemKeys.eventgrid_extension' -o tsv
  if ($LASTEXITCODE -ne 0) { $key = '' }
  if ($key) { break }
  Write-Host "subscribe-events: waiting for the function's eventgrid_extension key (attempt $attempt)"
  Start-Sleep -Seconds 10
}
if (-not $key) { throw 'subscribe-events: no eventgrid_extension key: is the code deployed?' }
$endpoint = "$($env:FUNCTION_APP_URL)/runtime/webhooks/eventgrid?functionName=segment_landed&code=$key"
# On Windows az is az.cmd, which cmd.exe runs: an unquoted & there ends the command, and the
# subscription would be made without its key (Azure CLI, doc/quoting-issues-with-powershell.md).
# The URL goes inside quotes of its own, which PowerShell passes on as they are and cmd.exe keeps
# the & within; az receives the URL whole. infra/tests/test_hooks.py replays this.
$quotedEndpoint = '"' + $endpoint + '"'
az eventgrid system-topic event-subscription create `
  --name segments-landed `
  --resource-group $env:AZURE_RESOURCE_GROUP `
  --system-topic-name $env:EVENT_GRID_SYSTEM_TOPIC_NAME `
  --endpoint-type webhook `
  --endpoint $quotedEndpoint `
  --included-event-types Microsoft.Storage.BlobCreated `
  --subject-begins-with "/blobServices/default/containers/$($env:SEGMENTS_CONTAINER)/" `
  --max-delivery-attempts 10 `
  --event-ttl 1440 `
  --output none
# A failing native command does not stop PowerShell: say so, so that azd stops too.
if ($LASTEXITCODE -ne 0) { throw "subscribe-events: the Event Grid subscription could not be made (az exit $LASTEXITCODE)" }
Write-Host "subscribe-events: BlobCreated events of container $($env:SEGMENTS_CONTAINER) now reach segment_landed"
