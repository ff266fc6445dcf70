"""drift-guard: when Azure ML detects data drift above a threshold, ask a
pipeline to retrain.

DatasetDriftDetected with `driftCoefficient` above `threshold` (config) →
POST a retraining request (the datasets and the drift window) to
`pipeline_url` (config) through wasi:http. Below the threshold → log and do
nothing. A 5xx or an unreachable pipeline → retry later; any other non-2xx →
reject (the request itself is wrong, retrying will not help).
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import logging, wasi_config_store as config
from wit_world.imports.gridlet_plugin_types import (
    Event,
    HandlerError_Reject,
    HandlerError_Retry,
    MlEvent_DatasetDriftDetected,
)

import gridlet_http

DEFAULT_THRESHOLD = 0.3


def setting(key: str) -> str | None:
    """A config value, or None when it is not granted."""
    try:
        return config.get(key)
    except Err as e:
        raise Err(HandlerError_Retry(f"config {key}: {e.value}"))


class Handler(exports.Handler):
    def handle(self, event: Event) -> None:
        if not isinstance(event.data, MlEvent_DatasetDriftDetected):
            return  # the manifest's filter sends only drift events; ignore others
        drift = event.data.value
        raw = setting("threshold") or str(DEFAULT_THRESHOLD)
        try:
            threshold = float(raw)
        except ValueError:
            raise Err(HandlerError_Reject(f"config threshold `{raw}` is not a number"))

        if drift.drift_coefficient <= threshold:
            logging.log(
                logging.Level.INFO,
                "drift-guard",
                f"{drift.data_drift_name}: drift {drift.drift_coefficient:.3f} <= {threshold}; no retraining",
            )
            return

        url = setting("pipeline_url")
        if not url:
            raise Err(HandlerError_Reject("config pipeline_url is not set"))
        request = {
            "reason": "data-drift",
            "eventId": event.id,
            "workspace": event.topic,
            "dataDriftId": drift.data_drift_id,
            "dataDriftName": drift.data_drift_name,
            "runId": drift.run_id,
            "driftCoefficient": drift.drift_coefficient,
            "threshold": threshold,
            "datasets": {"base": drift.base_dataset_id, "target": drift.target_dataset_id},
            "window": {"start": drift.start_time, "end": drift.end_time},
        }
        try:
            status = gridlet_http.post_json(url, json.dumps(request).encode())
        except gridlet_http.HttpError as e:
            raise Err(HandlerError_Retry(f"pipeline unreachable: {e}"))
        if status >= 500:
            raise Err(HandlerError_Retry(f"pipeline answered {status}"))
        if status >= 300:
            raise Err(HandlerError_Reject(f"pipeline refused the request: {status}"))
        logging.log(
            logging.Level.INFO,
            "drift-guard",
            f"{drift.data_drift_name}: drift {drift.drift_coefficient:.3f} > {threshold}; retraining requested",
        )
