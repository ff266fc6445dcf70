// audit-counter: count every event per event type and per workspace in the
// plugin's key-value store, and log one audit line per event.
//
// Keys (bucket "default"): `type:<ShortEventType>` and `workspace:<name>`.
// A key-value failure → retry (the counters must not miss an event).
//
// Bindings: `wit-bindgen c wit --world plugin` generates plugin.h/plugin.c.
// The export owns its arguments (freed below); strings handed back to the
// host (the error reason) are freed by the generated post-return code.

#include <stdio.h>
#include <string.h>

#include "plugin.h"

// The part of `s` after the last `sep` (all of `s` when there is none).
static plugin_string_t last_part(const plugin_string_t *s, char sep) {
  size_t start = 0;
  for (size_t i = 0; i < s->len; i++) {
    if (s->ptr[i] == sep) start = i + 1;
  }
  plugin_string_t part = {s->ptr + start, s->len - start};
  return part;
}

static void fail(exports_gridlet_plugin_handler_handler_error_t *err, const char *why) {
  err->tag = GRIDLET_PLUGIN_TYPES_HANDLER_ERROR_RETRY;
  plugin_string_dup(&err->val.retry, why);
}

// Add one to `<prefix>:<name>`; false (with `err` set) on failure.
static bool count(wasi_keyvalue_store_borrow_bucket_t bucket, const char *prefix,
                  const plugin_string_t *name, uint64_t *total,
                  exports_gridlet_plugin_handler_handler_error_t *err) {
  char key[512];
  int n = snprintf(key, sizeof key, "%s:%.*s", prefix, (int)name->len, (const char *)name->ptr);
  if (n < 0 || (size_t)n >= sizeof key) {
    fail(err, "counter key too long");
    return false;
  }
  plugin_string_t k;
  plugin_string_set(&k, key);
  wasi_keyvalue_atomics_error_t kv_err;
  if (!wasi_keyvalue_atomics_increment(bucket, &k, 1, total, &kv_err)) {
    wasi_keyvalue_atomics_error_free(&kv_err);
    fail(err, "key-value increment failed");
    return false;
  }
  return true;
}

bool exports_gridlet_plugin_handler_handle(exports_gridlet_plugin_handler_event_t *event,
                                           exports_gridlet_plugin_handler_handler_error_t *err) {
  bool ok = false;
  plugin_string_t store_name;
  plugin_string_set(&store_name, "default");
  wasi_keyvalue_store_own_bucket_t bucket;
  wasi_keyvalue_store_error_t open_err;
  if (!wasi_keyvalue_store_open(&store_name, &bucket, &open_err)) {
    wasi_keyvalue_store_error_free(&open_err);
    fail(err, "cannot open the key-value store");
    goto done;
  }
  wasi_keyvalue_store_borrow_bucket_t b = wasi_keyvalue_store_borrow_bucket(bucket);

  plugin_string_t type = last_part(&event->event_type, '.');
  plugin_string_t workspace = last_part(&event->topic, '/');
  uint64_t by_type = 0, by_workspace = 0;
  ok = count(b, "type", &type, &by_type, err) &&
       count(b, "workspace", &workspace, &by_workspace, err);
  wasi_keyvalue_store_bucket_drop_own(bucket);
  if (!ok) goto done;

  char line[1024];
  snprintf(line, sizeof line,
           "%.*s %.*s id=%.*s workspace=%.*s subject=%.*s attempt=%u (type total %llu, workspace total %llu)",
           (int)event->event_time.len, (const char *)event->event_time.ptr,
           (int)type.len, (const char *)type.ptr,
           (int)event->id.len, (const char *)event->id.ptr,
           (int)workspace.len, (const char *)workspace.ptr,
           (int)event->subject.len, (const char *)event->subject.ptr,
           event->attempt, (unsigned long long)by_type, (unsigned long long)by_workspace);
  plugin_string_t context, message;
  plugin_string_set(&context, "audit");
  plugin_string_set(&message, line);
  wasi_logging_logging_log(WASI_LOGGING_LOGGING_LEVEL_INFO, &context, &message);

done:
  exports_gridlet_plugin_handler_event_free(event);
  return ok;
}
