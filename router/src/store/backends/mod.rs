//! Store backends. Only this folder knows a storage engine.

pub mod postgres;
pub mod redb;
