//! Store backends. Only this folder knows a storage engine.

pub mod redb;
