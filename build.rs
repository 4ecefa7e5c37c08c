//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the files in
//! `migrations/` at compile time, and cargo does not watch new files there.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
