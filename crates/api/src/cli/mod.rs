//! The operator's command line besides serving: one module per command group (`commands`:
//! import, check, stats, migrate, normalize, dispatch, events; `export`; `keys`). Each
//! returns typed results and errors; `main.rs` prints them.

pub mod commands;
pub mod export;
pub mod keys;
