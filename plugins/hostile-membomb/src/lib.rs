//! `hostile-membomb` (test plugin): a valid ABI v1 plugin that reserves 1 MiB blocks
//! and keeps them, without bound. Each block grows the linear memory (`memory.grow`);
//! once the host's memory cap refuses a grow, the allocator fails and the Rust runtime
//! aborts: the call traps (`unreachable`). The blocks are not written to, so the
//! plugin reaches the cap on little fuel.

use gatepulse_plugin_sdk::prelude::*;

const BLOCK: usize = 1 << 20;

fn transform(_event: Event, _config: NoConfig) -> Result<Output, Error> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // `black_box`: the optimizer may not prove the blocks unused and skip them.
        hoard.push(std::hint::black_box(Vec::with_capacity(BLOCK)));
    }
}

gatepulse_plugin_sdk::export_transform!(transform, name = "hostile-membomb");
