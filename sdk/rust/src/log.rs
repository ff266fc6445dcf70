//! Logging through `wasi:logging`. Lines appear in the host's log with the
//! plugin's name and the id of the event being handled.

use crate::wasi::logging::logging::{log, Level};

/// Log at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, "", message);
}

/// Log at info level.
pub fn info(message: &str) {
    log(Level::Info, "", message);
}

/// Log at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, "", message);
}

/// Log at error level.
pub fn error(message: &str) {
    log(Level::Error, "", message);
}
