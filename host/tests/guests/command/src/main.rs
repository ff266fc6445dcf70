//! Test fixture: a WASI command, not a gridlet plugin. Every import it has
//! is one gridlet provides; what it lacks is the `handler` export.

fn main() {
    println!("a command, not a plugin");
}
