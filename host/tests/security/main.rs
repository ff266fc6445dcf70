//! The trust boundary, tried as an attacker would (docs/SECURITY.md): a
//! plugin author with a plugin file, an authenticated sender, anyone who can
//! reach the port. Every test is named after its attack, shows it failing
//! the way the docs say, and shows a well-behaved plugin ("good") still
//! delivering beside it.

#[path = "../common/mod.rs"]
mod common;

mod files;
mod grants;
mod logs;
mod network;
mod webhook;
