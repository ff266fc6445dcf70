// deployment-notifier: post a chat message when Azure ML deploys a model.
//
// ModelDeployed → POST {"text": ...} (Slack and Teams incoming webhooks both
// take it) to `chat_webhook_url` (config) with fetch(), naming the service,
// its compute type and the model ids. A 5xx or an unreachable chat service →
// retry later; any other non-2xx → reject (retrying will not fix it).

import { get } from "wasi:config/store@0.2.0-rc.1";
import { log } from "wasi:logging/logging@0.1.0-draft";

function setting(key) {
  try {
    return get(key);
  } catch (e) {
    throw { tag: "retry", val: `config ${key}: ${JSON.stringify(e)}` };
  }
}

function message(event, deployed) {
  const workspace = event.topic.split("/").pop();
  const models = deployed.modelIds.length
    ? deployed.modelIds.map((id) => `• ${id}`).join("\n")
    : "• (no model ids in the event)";
  return (
    `:rocket: *${deployed.serviceName}* deployed in workspace *${workspace}* ` +
    `on ${deployed.serviceComputeType}\n${models}`
  );
}

export const handler = {
  async handle(event) {
    if (event.data.tag !== "model-deployed") {
      return; // the manifest's filter sends only deployments; ignore others
    }
    const deployed = event.data.val;
    const url = setting("chat_webhook_url");
    if (!url) {
      throw { tag: "reject", val: "config chat_webhook_url is not set" };
    }
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ text: message(event, deployed) }),
      });
    } catch (e) {
      throw { tag: "retry", val: `chat service unreachable: ${e}` };
    }
    if (response.status >= 500) {
      throw { tag: "retry", val: `chat service answered ${response.status}` };
    }
    if (!response.ok) {
      throw { tag: "reject", val: `chat service refused the message: ${response.status}` };
    }
    log("info", "deployment-notifier", `${deployed.serviceName}: chat notified (${deployed.modelIds.length} models)`);
  },
};
